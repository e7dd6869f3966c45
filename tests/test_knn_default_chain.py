"""The kNN monitor evaluates with the one evaluation view (preprocess.eval_view): with
--knn_preprocessing left empty it takes the training chain's evaluation form, for every pretext
task's fashion_mnist config (issue #28: rotation fed its rotation stack to the kNN and stopped
with `tfssl: error: in user code:`)."""

import json
import os

import pytest

from helpers import cli
from tfssl.runtime.console import error_line
from tfssl.tools import idx_files

FASHION_IDX = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="module")
def small_records(tmp_path_factory):
  """96 train and 48 test images of real Fashion-MNIST, as records (the IDX source of
  build_tfrecords): a kNN over them takes a second, not the 10,000-image test split's minute."""
  folder = tmp_path_factory.mktemp("idx")
  for split, prefix, count in (("train", "train", 96), ("test", "t10k", 48)):
    for kind in ("images-idx3", "labels-idx1"):
      name = "%s-%s-ubyte.gz" % (prefix, kind)
      idx_files.write_idx(str(folder / name), idx_files.read_idx(os.path.join(FASHION_IDX, name))[:count])
  out = tmp_path_factory.mktemp("records")
  assert cli.build_tfrecords(["--source=idx", "--input_dir=%s" % folder, "--output_dir=%s" % out,
                              "--name=fashion_mnist"]) == 0
  return str(out)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["rotation", "exemplar", "jigsaw", "relative_patch_location"])
def test_pretext_configs_monitor_knn_with_the_default_chain(task, small_records, tmp_path):
  workdir = tmp_path / "w"
  result = cli.train_and_eval([
      "--config=%s/fashion_mnist" % task, "--dataset_dir=%s" % small_records,
      "--workdir=%s" % workdir, "--train_steps=2", "--batch_size=8", "--eval_batch_size=16",
      "--knn_every_epochs=1", "--knn_preprocessing=", "--knn_k=5", "--precision=fp32",
      "--log_every_steps=1", "--save_checkpoints_secs=600"])
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / "eval_results.json") as f:
    knn = [entry for entry in json.load(f) if entry["kind"] == "knn"]
  assert knn and knn[-1]["step"] == 2 and 0.0 <= knn[-1]["knn_top1"] <= 1.0, knn


def test_an_error_raised_while_tracing_names_what_failed():
  # AutoGraph wraps an error raised inside a traced function in `in user code:` and a traceback,
  # and Keras puts the layer on one line and the reason on the next; the one line the commands
  # print is the error itself (what the rotation stack fed to Conv2D printed before the fix).
  message = ("in user code:\n\n    File \"/x/trainer.py\", line 3, in step  *\n        y = f(x)\n\n"
             "    ValueError: Exception encountered when calling Conv2D.call().\n    \n"
             "    \x1b[1mInput 0 of layer \"conv2d\" is incompatible with the layer: expected "
             "ndim=4, found ndim=5.\x1b[0m\n    \n    Arguments received by Conv2D.call():\n"
             "      \u2022 inputs=tf.Tensor(shape=(16, 4, 32, 32, 3), dtype=float32)\n")
  assert error_line(message) == (
      "ValueError: Exception encountered when calling Conv2D.call(). Input 0 of layer "
      "\"conv2d\" is incompatible with the layer: expected ndim=4, found ndim=5.")
  assert error_line("--workdir is missing\nmore") == "--workdir is missing"
