"""The README's "Train on your own images", end to end: a flat folder of unlabeled photos (real
Fashion-MNIST items written as PNG and JPEG files of mixed sizes, with junk beside them) is
converted, SimCLR pretrains on it, the encoder is exported, and a fresh process fine-tunes it with
Keras's fit and Adam on a few labelled images."""

import json
import os
import textwrap

import numpy as np
import pytest
from PIL import Image

from helpers import cli
from tfssl.tools import idx_files

FASHION_IDX = "/usr/share/datasets/fashion-mnist"
SIZES = ((28, 28), (40, 40), (36, 30), (64, 48))


def _fashion_images(n, fashion_mnist_dir):
  path = os.path.join(FASHION_IDX, "train-images-idx3-ubyte.gz")
  if os.path.exists(path):
    return idx_files.read_idx(path)[:n]
  from tfssl.data import datasets  # the converted records hold the same images
  batch = next(iter(datasets.load_batches(fashion_mnist_dir, "train", "plain_preprocess", n)))
  return batch["image"].numpy()[..., 0]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, fashion_mnist_dir):
  folder = tmp_path_factory.mktemp("photos")
  images = _fashion_images(120, fashion_mnist_dir)
  for i, pixels in enumerate(images):
    image = Image.fromarray(pixels).convert("RGB" if i % 3 else "L").resize(SIZES[i % len(SIZES)])
    ext = (".png", ".jpg", ".JPEG")[i % 3]
    image.save(folder / ("item_%03d%s" % (i, ext)))
  (folder / "notes.txt").write_text("not an image")
  (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
  (folder / ".thumbnail.png").write_bytes(b"hidden, left out")
  return folder, len(images)


PRETRAIN = ["--task=simclr", "--architecture=cifar_resnet18", "--filters_factor=1",
            "--dataset=tfrecord", "--batch_size=16", "--preprocessing=simclr_augment",
            "--image_size=32", "--lr=1e-3", "--optimizer=adam", "--train_steps=4",
            "--serving_input_shape=None,32,32,3", "--save_checkpoints_secs=3600"]

FINE_TUNE = textwrap.dedent('''
    import sys
    import keras
    import numpy as np
    from tfssl.data import datasets
    from tfssl.models.export import ExportLayer
    export, data = sys.argv[1], sys.argv[2]
    batch = next(iter(datasets.load_batches(data, "test", "center_crop_resize", 64, image_size=32)))
    layer = ExportLayer(export, output="representation", trainable=True)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(10)(layer(inputs)["pre_logits"]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(batch["image"].numpy(), batch["label"].numpy(), batch_size=16, epochs=4,
                        verbose=0)
    print("LOSSES", " ".join("%.5f" % v for v in history.history["loss"]))
''')


@pytest.mark.slow
def test_a_folder_of_photos_to_a_fine_tuned_encoder(photos, tmp_path, repo_root,
                                                     fashion_mnist_dir, capsys):
  # The commands in this process (tests/helpers/cli.py); the fine-tuning in a fresh one, which
  # has only the export.
  folder, count = photos
  records = tmp_path / "records"
  code = cli.build_tfrecords(["--source=folder", "--train_dir=%s" % folder,
                              "--output_dir=%s" % records])
  stderr = capsys.readouterr().err
  assert code == 0, stderr[-3000:]
  assert "no labels" in stderr
  with open(records / "dataset_info.json") as f:
    manifest = json.load(f)
  assert manifest["labeled"] is False and manifest["num_classes"] == 0
  assert manifest["splits"]["train"]["num_examples"] == count  # every image, any extension case
  assert [os.path.basename(s["file"]) for s in manifest["skipped"]] == ["broken.jpg"]
  assert len(manifest["splits"]["train"]["shards"]) == 2  # sized to the folder, not 1024

  workdir = tmp_path / "simclr"
  base = PRETRAIN + ["--dataset_dir=%s" % records, "--workdir=%s" % workdir]
  # What needs labels says so, in one line, before anything is written.
  for extra, flag in (([], "--nolineareval_while_pretraining"),
                      (["--task=supervised", "--preprocessing=resize,-1_to_1", "--resize_size=32"],
                       "without labels")):
    refused = cli.train_and_eval(base + extra)
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = [l for l in refused.stderr.splitlines() if l.startswith("tfssl: error:")]
    assert len(lines) == 1 and flag in lines[0], refused.stderr[-2000:]
    assert not workdir.exists()

  base.append("--nolineareval_while_pretraining")
  trained = cli.train_and_eval(base)
  assert trained.returncode == 0, trained.stderr[-3000:]
  exported = cli.train_and_eval(base + ["--run_eval", "--eval_timeout_secs=5"])
  assert exported.returncode == 0, exported.stderr[-3000:]
  export = workdir / "export" / "4"
  assert (export / "saved_model.pb").exists()

  tuned = cli.process([str(export), fashion_mnist_dir], code=FINE_TUNE, cwd=repo_root,
                      timeout=900)
  assert tuned.returncode == 0, tuned.stderr[-3000:]
  losses = [float(v) for v in tuned.stdout.split("LOSSES", 1)[1].split()]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
