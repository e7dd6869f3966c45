"""build_tfrecords: every source, the manifest, skipping and --strict, resuming, --verify, and the
real Fashion-MNIST records that `make data` built."""

import glob
import io
import json
import os
import pickle
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import cli
from tfssl.data import tfrecord
from tfssl.tools import (build_tfrecords, fetch_fashion_mnist, idx_files, image_encoding,
                         image_sources, shard_writer, tfrecord_builder, verify_tfrecords)


# ---------------------------------------------------------------- helpers

def read_records(path, limit=-1):
  """The records of one shard as dicts of numpy values, plus the decoded RGB image."""
  out = []
  for serialized in tf.data.TFRecordDataset(path).take(limit):
    full = {k: v.numpy() for k, v in tfrecord.parse_full_example(serialized).items()}
    full["rgb"] = tfrecord.parse_example(serialized)["image"].numpy()
    out.append(full)
  return out


def read_split(output_dir, split):
  manifest = load_manifest(output_dir)
  return [r for s in manifest["splits"][split]["shards"]
          for r in read_records(os.path.join(output_dir, s["file"]))]


def load_manifest(output_dir):
  with open(os.path.join(output_dir, "dataset_info.json")) as f:
    return json.load(f)


def shard_bytes(output_dir):
  """{file: bytes} of every shard, and the manifest, for comparing two builds."""
  files = sorted(glob.glob(os.path.join(output_dir, "*-of-*"))) + [
      os.path.join(output_dir, "dataset_info.json")]
  return {os.path.basename(p): open(p, "rb").read() for p in files}


def run_cli(*args):
  """build_tfrecords in this process on its own FlagValues; returns the exit code."""
  return cli.build_tfrecords(args)


def encode(array, fmt, **kwargs):
  out = io.BytesIO()
  Image.fromarray(array).save(out, format=fmt, **kwargs)
  return out.getvalue()


def write_idx_set(folder, num_train, num_test, size=4):
  """A tiny MNIST-style set: image i is filled with value 10*i (+100 for test), label i % 10."""
  os.makedirs(folder, exist_ok=True)
  for prefix, count, base in (("train", num_train, 0), ("t10k", num_test, 100)):
    images = np.stack([np.full((size, size), base + 10 * i, np.uint8) for i in range(count)])
    idx_files.write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), images)
    idx_files.write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"),
                        (np.arange(count) % 10).astype(np.uint8))
  return folder


def build_idx(input_dir, output_dir, train_shards=3, validation_shards=1, **kwargs):
  source = image_sources.idx_source(input_dir)
  kwargs.setdefault("log", io.StringIO())
  return tfrecord_builder.build(source, output_dir, train_shards, validation_shards, **kwargs)


# ---------------------------------------------------------------- the real Fashion-MNIST

def test_fashion_mnist_records_that_make_data_built(fashion_mnist_dir):
  manifest = load_manifest(fashion_mnist_dir)
  assert manifest["name"] == "fashion_mnist" and manifest["num_classes"] == 10
  assert manifest["classes"][0] == "T-shirt/top" and manifest["classes"][9] == "Ankle boot"
  assert manifest["label_offset"] == 1 and manifest["num_skipped"] == 0
  expected = {"train": 60000, "validation": 10000}
  for split, total in expected.items():
    info = manifest["splits"][split]
    assert info["num_examples"] == total
    assert sum(s["num_examples"] for s in info["shards"]) == total
    files = [os.path.join(fashion_mnist_dir, s["file"]) for s in info["shards"]]
    assert sorted(os.path.basename(p) for p in glob.glob(
        os.path.join(fashion_mnist_dir, f"{split}-*"))) == [s["file"] for s in info["shards"]]
    # The raw stored labels, without decoding: 1..10 (slim's offset), every class equally often.
    labels = tf.data.TFRecordDataset(files).batch(10000).map(
        lambda s: tf.io.parse_example(s, {"image/class/label": tfrecord.FEATURES[
            "image/class/label"]})["image/class/label"])
    labels = np.concatenate([b.numpy() for b in labels])
    assert len(labels) == total
    assert labels.min() == 1 and labels.max() == 10
    np.testing.assert_array_equal(np.bincount(labels, minlength=11)[1:], [total // 10] * 10)
  first = read_records(os.path.join(fashion_mnist_dir,
                                    manifest["splits"]["train"]["shards"][0]["file"]), 1)[0]
  assert first["image/format"] == b"PNG" and first["image/channels"] == 1
  assert (first["image/height"], first["image/width"]) == (28, 28)
  assert first["image/class/text"].decode() == manifest["classes"][first["image/class/label"] - 1]
  assert first["rgb"].shape == (28, 28, 3)
  np.testing.assert_array_equal(first["rgb"][..., 0], first["rgb"][..., 2])


# ---------------------------------------------------------------- IDX

def test_idx_files_round_trip_and_truncation_error(tmp_path):
  array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  for name in ("plain-idx3-ubyte", "packed-idx3-ubyte.gz"):
    idx_files.write_idx(str(tmp_path / name), array)
    np.testing.assert_array_equal(idx_files.read_idx(str(tmp_path / name)), array)
  # Header bytes by hand: type 0x08 (uint8), 3 dimensions, then 2, 3, 4 big-endian.
  assert (tmp_path / "plain-idx3-ubyte").read_bytes()[:16] == bytes(
      [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
  cut = tmp_path / "cut-idx3-ubyte"
  cut.write_bytes((tmp_path / "plain-idx3-ubyte").read_bytes()[:-5])
  with pytest.raises(ValueError, match="cut-idx3-ubyte.*truncated"):
    idx_files.read_idx(str(cut))


def test_idx_build_stores_png_and_offset_labels(tmp_path):
  write_idx_set(str(tmp_path / "idx"), num_train=7, num_test=3)
  manifest = build_idx(str(tmp_path / "idx"), str(tmp_path / "out"), train_shards=2)
  assert [s["num_examples"] for s in manifest["splits"]["train"]["shards"]] == [3, 4]
  assert [s["file"] for s in manifest["splits"]["train"]["shards"]] == [
      "train-00000-of-00002", "train-00001-of-00002"]
  assert manifest["splits"]["validation"]["num_examples"] == 3
  train = read_split(str(tmp_path / "out"), "train")
  assert [r["image/class/label"] for r in train] == [1, 2, 3, 4, 5, 6, 7]  # i % 10 + 1, in order
  assert [int(r["rgb"][0, 0, 1]) for r in train] == [0, 10, 20, 30, 40, 50, 60]
  assert train[6]["image/class/text"] == b"Shirt"  # class index 6
  assert train[6]["image/filename"] == b"train-images-idx3-ubyte.gz:6"
  assert [int(r["rgb"][2, 3, 0]) for r in read_split(str(tmp_path / "out"), "validation")] == [
      100, 110, 120]


# ---------------------------------------------------------------- CIFAR

def cifar_image(i):
  """Channel-major 3x32x32 image whose pixel (row 1, col 2) is (i, 2i, 3i); the rest 0."""
  chw = np.zeros((3, 32, 32), np.uint8)
  chw[:, 1, 2] = (i, 2 * i, 3 * i)
  return chw


def write_cifar10_bin(folder, per_batch=2):
  os.makedirs(folder)
  i = 0
  for name in [f"data_batch_{b}.bin" for b in range(1, 6)] + ["test_batch.bin"]:
    with open(os.path.join(folder, name), "wb") as f:
      for _ in range(per_batch):
        f.write(bytes([i % 10]) + cifar_image(i).tobytes())
        i += 1
  with open(os.path.join(folder, "batches.meta.txt"), "w") as f:
    f.write("\n".join(f"c{k}" for k in range(10)) + "\n\n")


# CIFAR's official python batches were pickled by Python 2 (protocol 2, str as BINSTRING, numpy's
# array reconstruction): written here opcode by opcode, since Python 3's pickler cannot produce it.

def _py2_str(b):
  if len(b) < 256:
    return b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING
  return b"T" + struct.pack("<i", len(b)) + b  # BINSTRING


def _py2_int(i):
  return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)  # BININT1 / BININT


def _py2_array(a):
  """numpy.core.multiarray._reconstruct(ndarray, (0,), 'b') then __setstate__, as numpy 1.x in
  Python 2 wrote a uint8 array."""
  a = np.ascontiguousarray(a, np.uint8)
  shape = b"(" + b"".join(_py2_int(d) for d in a.shape) + b"t"
  dtype = (b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
           + b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1)
           + _py2_int(0) + b"tb")
  return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _py2_int(0) + b"\x85"
          + _py2_str(b"b") + b"\x87R" + b"(" + _py2_int(1) + shape + dtype + b"\x89"
          + _py2_str(a.tobytes()) + b"tb")


def py2_pickle(d):
  """A dict of bytes keys -> uint8 array, list of ints/bytes, or bytes, pickled as Python 2 did."""
  out = b"\x80\x02}("
  for key, value in d.items():
    out += _py2_str(key)
    if isinstance(value, np.ndarray):
      out += _py2_array(value)
    elif isinstance(value, list):
      out += b"](" + b"".join(_py2_int(x) if isinstance(x, int) else _py2_str(x)
                              for x in value) + b"e"
    else:
      out += _py2_str(value)
  return out + b"u."


def write_cifar10_py(folder, per_batch=2):
  """The official layout in the official (Python 2) pickle format."""
  os.makedirs(folder)
  i = 0
  for b, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
    data = np.stack([cifar_image(i + k).reshape(-1) for k in range(per_batch)])
    labels = [(i + k) % 10 for k in range(per_batch)]
    batch = {b"batch_label": b"training batch %d of 5" % (b + 1), b"labels": labels,
             b"data": data, b"filenames": [b"img_%d.png" % (i + k) for k in range(per_batch)]}
    with open(os.path.join(folder, name), "wb") as f:
      f.write(py2_pickle(batch))
    i += per_batch
  with open(os.path.join(folder, "batches.meta"), "wb") as f:
    f.write(py2_pickle({b"label_names": [f"c{k}".encode() for k in range(10)],
                        b"num_cases_per_batch": b"10000"}))


def write_cifar100(folder, layout):
  os.makedirs(folder)
  for split, first in (("train", 0), ("test", 4)):
    images = [cifar_image(first + k) for k in range(4)]
    fine = [(first + k) * 12 + 1 for k in range(4)]  # 1, 13, 25, ...: not the coarse label
    if layout == "bin":
      with open(os.path.join(folder, split + ".bin"), "wb") as f:
        for image, label in zip(images, fine):
          f.write(bytes([7, label]) + image.tobytes())
    else:
      with open(os.path.join(folder, split), "wb") as f:
        pickle.dump({b"data": np.stack([im.reshape(-1) for im in images]),
                     b"fine_labels": fine, b"coarse_labels": [7] * 4}, f)
  names = [f"f{k}" for k in range(100)]
  if layout == "bin":
    with open(os.path.join(folder, "fine_label_names.txt"), "w") as f:
      f.write("\n".join(names) + "\n")
  else:
    with open(os.path.join(folder, "meta"), "wb") as f:
      pickle.dump({b"fine_label_names": [n.encode() for n in names]}, f)


@pytest.mark.parametrize("layout", ["cifar-10-batches-bin", "cifar-10-batches-py"])
def test_cifar10_layouts(tmp_path, layout):
  (write_cifar10_bin if layout.endswith("bin") else write_cifar10_py)(str(tmp_path / layout))
  # --input_dir may be the parent of the layout folder.
  assert run_cli("--source=cifar10", f"--input_dir={tmp_path}", f"--output_dir={tmp_path}/out",
                 "--train_shards=2", "--validation_shards=1", "--num_workers=1") == 0
  manifest = load_manifest(str(tmp_path / "out"))
  assert manifest["name"] == "cifar10" and manifest["classes"] == [f"c{k}" for k in range(10)]
  assert manifest["splits"]["train"]["num_examples"] == 10
  assert manifest["splits"]["validation"]["num_examples"] == 2
  train = read_split(str(tmp_path / "out"), "train")
  for i, record in enumerate(train):
    assert record["image/format"] == b"PNG" and record["image/channels"] == 3
    assert record["image/class/label"] == i % 10 + 1
    assert record["image/class/text"] == f"c{i % 10}".encode()
    # Stored channel-major; the record must be HWC with the pixel at row 1, column 2.
    np.testing.assert_array_equal(record["rgb"][1, 2], [i, 2 * i, 3 * i])
    assert record["rgb"].sum() == 6 * i
  validation = read_split(str(tmp_path / "out"), "validation")
  np.testing.assert_array_equal(validation[1]["rgb"][1, 2], [11, 22, 33])


class _RunsCode:
  """What a crafted "CIFAR batch" can hold: unpickling it calls os.system."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, ("touch " + self.marker,))


@pytest.mark.parametrize("file_name", ["data_batch_1", "batches.meta"])
def test_a_pickle_that_would_run_code_is_refused_with_one_line(tmp_path, file_name, capsys):
  folder = tmp_path / "cifar-10-batches-py"
  write_cifar10_py(str(folder))
  marker = str(tmp_path / "code_ran")
  with open(folder / file_name, "wb") as f:
    pickle.dump({b"data": _RunsCode(marker), b"labels": [0], b"label_names": [b"x"]}, f)
  code = run_cli("--source=cifar10", f"--input_dir={tmp_path}", f"--output_dir={tmp_path}/out",
                 "--train_shards=1", "--validation_shards=1", "--num_workers=1")
  stderr = capsys.readouterr().err
  assert not os.path.exists(marker), "the pickle ran code"
  assert code != 0 and "Traceback" not in stderr, stderr[-2000:]
  errors = [l for l in stderr.splitlines() if "refused" in l]
  assert len(errors) == 1 and file_name in errors[0] and "system" in errors[0], stderr[-2000:]
  assert not glob.glob(str(tmp_path / "out" / "train-*"))


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_cifar100_uses_fine_labels(tmp_path, layout):
  folder = tmp_path / ("cifar-100-binary" if layout == "bin" else "cifar-100-python")
  write_cifar100(str(folder), layout)
  assert run_cli("--source=cifar100", f"--input_dir={folder}", f"--output_dir={tmp_path}/out",
                 "--train_shards=1", "--validation_shards=1", "--num_workers=1") == 0
  assert load_manifest(str(tmp_path / "out"))["num_classes"] == 100
  train = read_split(str(tmp_path / "out"), "train")
  assert [r["image/class/label"] for r in train] == [2, 14, 26, 38]
  assert [r["image/class/text"] for r in train] == [b"f1", b"f13", b"f25", b"f37"]
  validation = read_split(str(tmp_path / "out"), "validation")
  np.testing.assert_array_equal(validation[0]["rgb"][1, 2], [4, 8, 12])


def test_cifar_missing_and_truncated_files_are_one_line_errors(tmp_path, capsys):
  assert run_cli("--source=cifar10", f"--input_dir={tmp_path}", f"--output_dir={tmp_path}/o") == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "cifar-10-batches-bin" in err[0] and str(tmp_path) in err[0]
  write_cifar10_bin(str(tmp_path / "cifar-10-batches-bin"))
  with open(tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin", "ab") as f:
    f.write(b"\0" * 5)
  assert run_cli("--source=cifar10", f"--input_dir={tmp_path}", f"--output_dir={tmp_path}/o") == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "data_batch_3.bin" in err[0] and "truncated" in err[0]


def test_parallel_workers_write_the_same_bytes_as_one(tmp_path):
  write_cifar10_bin(str(tmp_path / "cifar-10-batches-bin"))
  source = image_sources.cifar_source(str(tmp_path), "cifar10")
  for workers in (1, 2):
    tfrecord_builder.build(source, str(tmp_path / f"w{workers}"), 3, 2, num_workers=workers,
                           log=io.StringIO())
  assert shard_bytes(str(tmp_path / "w1")) == shard_bytes(str(tmp_path / "w2"))
  assert len(glob.glob(str(tmp_path / "w2" / "train-*-of-00003"))) == 3


# ---------------------------------------------------------------- folders of images

def flat(colour, size=(6, 5)):
  return np.full((size[1], size[0], 3), colour, np.uint8)


@pytest.fixture
def image_folder(tmp_path):
  """train/{cat,dog,emu} with one image of each awkward kind, a truncated JPEG, a non-image."""
  root = tmp_path / "images"
  for name in ("train/cat", "train/dog", "train/emu", "validation/cat", "validation/dog"):
    (root / name).mkdir(parents=True)
  (root / "train/cat/rgb.jpg").write_bytes(encode(flat((200, 30, 60)), "JPEG", quality=95))
  cmyk = Image.new("CMYK", (6, 5), (0, 255, 255, 0))  # pure red
  cmyk.save(root / "train/cat/cmyk.jpg", quality=95)
  (root / "train/cat/notes.txt").write_text("not an image")
  rgba = np.zeros((5, 6, 4), np.uint8)
  rgba[...] = (10, 200, 30, 0)  # fully transparent: the colour underneath must survive
  (root / "train/dog/alpha.png").write_bytes(encode(rgba, "PNG"))
  (root / "train/dog/gray.jpg").write_bytes(encode(np.full((5, 6), 90, np.uint8), "JPEG",
                                                   quality=95))
  (root / "train/dog/anim.gif").write_bytes(encode(flat((0, 0, 255)), "GIF"))
  (root / "train/emu/pic.bmp").write_bytes(encode(flat((255, 255, 0)), "BMP"))
  noisy = np.random.RandomState(0).randint(0, 255, (32, 32, 3)).astype(np.uint8)
  whole = encode(noisy, "JPEG")
  (root / "train/emu/broken.jpg").write_bytes(whole[:len(whole) // 2])
  (root / "validation/cat/v.jpg").write_bytes(encode(flat((200, 30, 60)), "JPEG", quality=95))
  (root / "validation/dog/v.png").write_bytes(encode(flat((1, 2, 3)), "PNG"))
  return root


EXPECTED_RGB = {"rgb.jpg": (200, 30, 60), "cmyk.jpg": (255, 0, 0), "alpha.png": (10, 200, 30),
                "gray.jpg": (90, 90, 90), "anim.gif": (0, 0, 255), "pic.bmp": (255, 255, 0)}


def test_folder_converts_every_kind_to_rgb_jpeg_and_skips_the_truncated(image_folder, tmp_path):
  log = io.StringIO()
  source = build_tfrecords.load_source("folder", train_dir=str(image_folder / "train"),
                                       validation_dir=str(image_folder / "validation"),
                                       output_dir=str(tmp_path / "out"))
  manifest = tfrecord_builder.build(source, str(tmp_path / "out"), 2, 1, log=log)
  assert manifest["classes"] == ["cat", "dog", "emu"] and manifest["name"] == "out"
  assert manifest["splits"]["train"]["num_examples"] == 6
  assert manifest["num_skipped"] == 1
  (skipped,) = manifest["skipped"]
  assert skipped["file"] == str(image_folder / "train/emu/broken.jpg") and skipped["reason"]
  assert "broken.jpg" in log.getvalue() and "skipped 1" in log.getvalue()
  train = {r["image/filename"].decode(): r for r in read_split(str(tmp_path / "out"), "train")}
  assert set(train) == set(EXPECTED_RGB)
  labels = {"rgb.jpg": 1, "cmyk.jpg": 1, "alpha.png": 2, "gray.jpg": 2, "anim.gif": 2,
            "pic.bmp": 3}
  for name, record in train.items():
    assert record["image/format"] == b"JPEG" and record["image/channels"] == 3, name
    assert record["image/class/label"] == labels[name], name
    assert record["rgb"].shape == (5, 6, 3), name
    assert (record["image/height"], record["image/width"]) == (5, 6), name
    assert np.abs(record["rgb"].astype(int) - EXPECTED_RGB[name]).max() <= 4, name
  # An RGB JPEG is stored untouched; everything else was re-encoded.
  assert train["rgb.jpg"]["image/encoded"] == (image_folder / "train/cat/rgb.jpg").read_bytes()
  assert train["cmyk.jpg"]["image/encoded"] != (image_folder / "train/cat/cmyk.jpg").read_bytes()
  validation = read_split(str(tmp_path / "out"), "validation")
  assert sorted(r["image/class/label"] for r in validation) == [1, 2]


def test_labels_file_fixes_the_class_order(image_folder, tmp_path):
  labels = tmp_path / "labels.txt"
  labels.write_text("emu\ndog\ncat\n")
  source = image_sources.folder_source(str(image_folder / "train"), labels_file=str(labels))
  assert source.classes == ["emu", "dog", "cat"]
  by_name = {item.filename: item.label for item in source.splits["train"]}
  assert by_name["pic.bmp"] == 0 and by_name["rgb.jpg"] == 2
  labels.write_text("emu\ndog\n")
  with pytest.raises(image_sources.SourceError, match="'cat'.*labels file"):
    image_sources.folder_source(str(image_folder / "train"), labels_file=str(labels))


def test_folder_listing_is_a_fixed_shuffle(image_folder):
  first = image_sources.folder_source(str(image_folder / "train"))
  again = image_sources.folder_source(str(image_folder / "train"))
  names = [item.filename for item in first.splits["train"]]
  assert names == [item.filename for item in again.splits["train"]]
  assert "notes.txt" not in names and len(names) == 7
  other = image_sources.folder_source(str(image_folder / "train"), seed=1)
  assert sorted(names) == sorted(item.filename for item in other.splits["train"])


def test_strict_stops_with_exit_1_naming_the_file(image_folder, tmp_path, capsys):
  code = run_cli("--source=folder", f"--train_dir={image_folder / 'train'}",
                 f"--output_dir={tmp_path / 'out'}", "--train_shards=1", "--num_workers=1",
                 "--strict")
  assert code == 1
  errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and str(image_folder / "train/emu/broken.jpg") in errors[0]
  assert "--strict" in errors[0]
  assert not (tmp_path / "out" / "dataset_info.json").exists()
  assert not (tmp_path / "out" / "train-00000-of-00001").exists()


def test_strict_refuses_a_shard_an_earlier_lenient_run_completed(image_folder, tmp_path):
  source = image_sources.folder_source(str(image_folder / "train"))
  tfrecord_builder.build(source, str(tmp_path / "out"), 1, 1, log=io.StringIO())
  with pytest.raises(shard_writer.StrictFailure, match="broken.jpg"):
    tfrecord_builder.build(source, str(tmp_path / "out"), 1, 1, strict=True, log=io.StringIO())


def test_unreadable_inputs_raise_bad_image(tmp_path):
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "text.jpg").write_text("hello")
  reasons = {}
  for name in ("empty.png", "text.jpg", "missing.bmp"):
    with pytest.raises(image_encoding.BadImage) as caught:
      image_encoding.encode_item(image_sources.Item(name, 0, path=str(tmp_path / name)))
    reasons[name] = str(caught.value)
  assert reasons["empty.png"] == "empty file"
  assert reasons["text.jpg"] == "not a readable JPEG, PNG, GIF or BMP image"
  assert reasons["missing.bmp"].startswith("cannot read")


# ---------------------------------------------------------------- resuming

class Killed(BaseException):
  """Stands in for SIGKILL: nothing in the builder may catch it."""


def test_killed_conversion_resumes_to_the_same_result(tmp_path, monkeypatch):
  write_idx_set(str(tmp_path / "idx"), num_train=9, num_test=2)
  build_idx(str(tmp_path / "idx"), str(tmp_path / "clean"))
  out = str(tmp_path / "out")

  real_encode, calls = image_encoding.encode_item, []

  def dies_in_third_shard(item):
    calls.append(item)
    if len(calls) == 8:  # shards hold items 0-2, 3-5, 6-8: die after one record of the third
      raise Killed()
    return real_encode(item)

  monkeypatch.setattr(image_encoding, "encode_item", dies_in_third_shard)
  with pytest.raises(Killed):
    build_idx(str(tmp_path / "idx"), out)
  monkeypatch.setattr(image_encoding, "encode_item", real_encode)

  # Killed mid-shard: the first two shards are final, the third only exists as a hidden temp file.
  assert os.path.exists(os.path.join(out, ".train-00002-of-00003.tmp"))
  assert not os.path.exists(os.path.join(out, "train-00002-of-00003"))
  assert not os.path.exists(os.path.join(out, "dataset_info.json"))
  assert sorted(os.listdir(out)) == [".build_state", ".train-00002-of-00003.tmp",
                                     "train-00000-of-00003", "train-00001-of-00003"]
  # And a shard damaged under its final name (a disk fault, a copy cut short) must be redone.
  damaged = os.path.join(out, "train-00001-of-00003")
  with open(damaged, "r+b") as f:
    f.truncate(os.path.getsize(damaged) - 3)
  kept = os.stat(os.path.join(out, "train-00000-of-00003")).st_mtime_ns

  log = io.StringIO()
  build_idx(str(tmp_path / "idx"), out, log=log)
  assert "1 of 4 shards already complete, writing 3" in log.getvalue()
  assert os.stat(os.path.join(out, "train-00000-of-00003")).st_mtime_ns == kept
  assert shard_bytes(out) == shard_bytes(str(tmp_path / "clean"))
  assert not glob.glob(os.path.join(out, ".*.tmp"))
  assert verify_tfrecords.verify(out) == []

  # A rerun with nothing to do rewrites no shard.
  log = io.StringIO()
  build_idx(str(tmp_path / "idx"), out, log=log)
  assert "writing" not in log.getvalue()


def test_changed_shard_count_replaces_the_old_shards(tmp_path):
  write_idx_set(str(tmp_path / "idx"), num_train=9, num_test=2)
  build_idx(str(tmp_path / "idx"), str(tmp_path / "out"), train_shards=3)
  (tmp_path / "out" / "mine.txt").write_text("a user's file")
  manifest = build_idx(str(tmp_path / "idx"), str(tmp_path / "out"), train_shards=2)
  assert sorted(os.listdir(tmp_path / "out")) == [
      ".build_state", "dataset_info.json", "mine.txt", "train-00000-of-00002",
      "train-00001-of-00002", "validation-00000-of-00001"]
  assert manifest["splits"]["train"]["num_examples"] == 9


def test_changed_input_redoes_its_shard(tmp_path):
  write_idx_set(str(tmp_path / "idx"), num_train=4, num_test=2)
  build_idx(str(tmp_path / "idx"), str(tmp_path / "out"), train_shards=1)
  write_idx_set(str(tmp_path / "idx"), num_train=5, num_test=2)
  manifest = build_idx(str(tmp_path / "idx"), str(tmp_path / "out"), train_shards=1)
  assert manifest["splits"]["train"]["shards"][0]["num_examples"] == 5
  assert len(read_split(str(tmp_path / "out"), "train")) == 5


def test_count_records_walks_the_headers(tmp_path):
  path = str(tmp_path / "r")
  with tf.io.TFRecordWriter(path) as writer:
    for payload in (b"a", b"", b"xyz" * 100):
      writer.write(payload)
  assert shard_writer.count_records(path) == 3
  assert os.path.getsize(path) == 3 * 16 + 1 + 0 + 300  # 8 length + 4 + 4 crc each, plus data
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 1)
  assert shard_writer.count_records(path) is None


# ---------------------------------------------------------------- --verify

@pytest.fixture
def built(tmp_path):
  write_idx_set(str(tmp_path / "idx"), num_train=6, num_test=2)
  build_idx(str(tmp_path / "idx"), str(tmp_path / "out"), train_shards=2)
  return tmp_path / "out"


def test_verify_passes_a_clean_build(built, capsys):
  assert run_cli("--verify", f"--output_dir={built}") == 0
  assert "matches dataset_info.json" in capsys.readouterr().err


def test_verify_catches_a_tampered_shard(built, capsys):
  shard = built / "train-00001-of-00002"
  data = bytearray(shard.read_bytes())
  data[len(data) // 2] ^= 0xFF
  shard.write_bytes(bytes(data))
  assert run_cli("--verify", f"--output_dir={built}") == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("verify failed:") and str(shard) in err[0]


def test_verify_catches_counts_that_disagree_with_the_manifest(built, capsys):
  manifest = load_manifest(str(built))
  manifest["splits"]["train"]["shards"][0]["num_examples"] += 1
  manifest["splits"]["train"]["num_examples"] += 1
  (built / "dataset_info.json").write_text(json.dumps(manifest))
  (built / "validation-00007-of-00009").write_bytes(b"")
  assert run_cli("--verify", f"--output_dir={built}") == 1
  err = capsys.readouterr().err
  assert "train-00000-of-00002: dataset_info.json says 4 records, the file holds 3" in err
  assert "validation-00007-of-00009: not in dataset_info.json" in err


def test_verify_without_a_build_says_so(tmp_path, capsys):
  assert run_cli("--verify", f"--output_dir={tmp_path}") == 1
  assert "dataset_info.json: missing" in capsys.readouterr().err


# ---------------------------------------------------------------- the fetcher

def test_fetcher_builds_from_an_idx_dir(tmp_path):
  write_idx_set(str(tmp_path / "idx"), num_train=5, num_test=3)
  manifest = fetch_fashion_mnist.fetch(str(tmp_path / "out"), str(tmp_path / "idx"),
                                       train_shards=2, validation_shards=1, num_workers=1,
                                       log=io.StringIO())
  assert manifest["name"] == "fashion_mnist"
  assert (manifest["splits"]["train"]["num_examples"],
          manifest["splits"]["validation"]["num_examples"]) == (5, 3)


def test_fetcher_says_what_it_tried_when_nothing_works(tmp_path, monkeypatch):
  def fails(reason):
    def attempt(*args):
      raise fetch_fashion_mnist.FetchError(reason)
    return attempt

  monkeypatch.setattr(fetch_fashion_mnist, "DEBIAN_DIR", str(tmp_path / "nowhere"))
  monkeypatch.setattr(fetch_fashion_mnist, "_apt_install", fails("not root"))
  monkeypatch.setattr(fetch_fashion_mnist, "_tfds_download", fails("no network"))
  with pytest.raises(fetch_fashion_mnist.FetchError) as caught:
    fetch_fashion_mnist.find_idx_dir(str(tmp_path / "out"), log=io.StringIO())
  message = str(caught.value)
  assert "\n" not in message
  assert "nowhere is missing" in message and "not root" in message and "no network" in message
  assert "--idx_dir" in message
  with pytest.raises(fetch_fashion_mnist.FetchError, match="--idx_dir=.*lacks"):
    fetch_fashion_mnist.find_idx_dir(str(tmp_path / "out"), str(tmp_path))
