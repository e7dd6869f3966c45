"""The dataset registry's splits and the input pipeline, on tiny records written here and on the
real Fashion-MNIST records of `make data`."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.data import datasets
from tfssl.data import dataset_spec
from tfssl.data import tfrecord


def write_shard(path, values):
  """A shard of 4x4 PNG records; record v has every pixel v and stored label v % 10 + 1."""
  with tf.io.TFRecordWriter(path) as writer:
    for v in values:
      encoded = tf.io.encode_png(np.full((4, 4, 3), v, np.uint8)).numpy()
      example = tfrecord.make_example(encoded, "PNG", v % 10 + 1, "", 4, 4, 3, "img%d" % v)
      writer.write(example.SerializeToString())


def write_manifest(folder, shard_counts, name="tfrecord"):
  splits = {}
  for split, counts in shard_counts.items():
    shards = [{"file": "%s-%05d-of-%05d" % (split, i, len(counts)), "num_examples": n}
              for i, n in enumerate(counts)]
    splits[split] = {"num_examples": sum(counts), "shards": shards}
  with open(os.path.join(folder, "dataset_info.json"), "w") as f:
    json.dump({"name": name, "num_classes": 10, "label_offset": 1, "splits": splits}, f)
  return splits


@pytest.fixture
def records_dir(tmp_path):
  """4 train shards of 5 records (values 0..19, in file order) and 1 validation shard (20..24)."""
  folder = str(tmp_path)
  splits = write_manifest(folder, {"train": [5, 5, 5, 5], "validation": [5]})
  value = 0
  for info in splits.values():
    for shard in info["shards"]:
      write_shard(os.path.join(folder, shard["file"]), range(value, value + 5))
      value += 5
  return folder


def pixel_values(batches):
  """The constant pixel value of each image, batch by batch (images scaled by 0_to_1)."""
  return [np.round(b["image"][:, 0, 0, 0].numpy() * 255).astype(int).tolist() for b in batches]


def config(folder, **overrides):
  values = dict(dataset="tfrecord", dataset_dir=folder, preprocessing="0_to_1", batch_size=4)
  values.update(overrides)
  return Config.make(**values)


def test_val_shard_rule_scales_imagenets_40_of_1024():
  assert [dataset_spec.val_shard_count(n) for n in (1024, 10, 25, 26, 100, 2)] == [40, 1, 1, 2, 4, 1]


def test_manifest_splits_and_exact_counts(tmp_path):
  folder = str(tmp_path)
  write_manifest(folder, {"train": [7, 6, 6, 6, 6, 6, 6, 6, 6, 5], "validation": [3, 4]})
  spec = datasets.get_dataset("tfrecord", folder)
  assert (spec.num_classes, spec.label_offset) == (10, 1)
  counts = {s: spec.count(s) for s in dataset_spec.SPLITS}
  assert counts == {"train": 55, "val": 5, "trainval": 60, "test": 7}
  for split, info in write_manifest(folder, {"train": [1] * 10, "validation": [1, 1]}).items():
    for shard in info["shards"]:
      open(os.path.join(folder, shard["file"]), "w").close()
  names = lambda split: [os.path.basename(f) for f in spec.files(split)]
  assert names("val") == ["train-00009-of-00010"]
  assert names("train") == ["train-%05d-of-00010" % i for i in range(9)]
  assert names("trainval") == names("train") + names("val")
  assert names("test") == ["validation-00000-of-00002", "validation-00001-of-00002"]


def test_one_train_shard_has_trainval_but_no_train_val_cut(tmp_path):
  write_manifest(str(tmp_path), {"train": [8], "validation": [2]})
  spec = datasets.get_dataset("fashion_mnist", str(tmp_path))
  assert spec.count("trainval") == 8 and spec.count("test") == 2
  with pytest.raises(ValueError, match="at least 2 train shards"):
    spec.count("train")


def test_imagenet_names_and_the_original_counts(tmp_path):
  folder = str(tmp_path)
  for i in range(1024):
    open(os.path.join(folder, "train-%05d-of-01024" % i), "w").close()
  for i in range(128):
    open(os.path.join(folder, "validation-%05d-of-00128" % i), "w").close()
  spec = datasets.get_dataset("imagenet", folder)
  assert (spec.num_classes, spec.label_offset) == (1000, 1)
  assert {s: spec.count(s) for s in dataset_spec.SPLITS} == {
      "train": 1231121, "val": 50046, "trainval": 1281167, "test": 50000}
  names = {s: [os.path.basename(f) for f in spec.files(s)] for s in dataset_spec.SPLITS}
  assert names["train"] == ["train-%05d-of-01024" % i for i in range(984)]
  assert names["val"] == ["train-%05d-of-01024" % i for i in range(984, 1024)]
  assert names["trainval"] == names["train"] + names["val"]
  assert names["test"] == ["validation-%05d-of-00128" % i for i in range(128)]
  os.remove(os.path.join(folder, "train-00990-of-01024"))
  with pytest.raises(ValueError, match="train-00990-of-01024 of split 'val' is missing"):
    spec.files("val")


def test_user_errors_are_one_clear_line(tmp_path):
  cases = [
      (lambda: datasets.get_dataset("imagenett", str(tmp_path)), "unknown dataset 'imagenett'"),
      (lambda: datasets.get_dataset("tfrecord", str(tmp_path / "nope")), "does not exist"),
      (lambda: datasets.get_dataset("cifar10", str(tmp_path)), "has no dataset_info.json"),
  ]
  for make, expected in cases:
    with pytest.raises(ValueError) as error:
      make()
    assert expected in str(error.value) and "\n" not in str(error.value)
  assert "fashion_mnist" in str(pytest.raises(ValueError, cases[0][0]).value)
  write_manifest(str(tmp_path), {"train": [1, 1]})
  with pytest.raises(ValueError, match="unknown split 'valid'.*train, val, trainval, test"):
    datasets.get_dataset("tfrecord", str(tmp_path)).count("valid")


def test_eval_is_one_ordered_pass_keeping_the_remainder(records_dir):
  batches = list(datasets.load_batches(records_dir, "trainval", "0_to_1", 6))
  assert pixel_values(batches) == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18)),
                                   [18, 19]]
  labels = np.concatenate([b["label"].numpy() for b in batches])
  assert labels.tolist() == [v % 10 for v in range(20)]  # stored v % 10 + 1, offset removed
  assert batches[0]["image"].dtype == tf.float32
  assert pixel_values(datasets.load_batches(records_dir, "test", "0_to_1", 5)) == [
      list(range(20, 25))]


def test_training_shuffles_repeats_and_drops_the_remainder(records_dir):
  batches = datasets.load_batches(records_dir, "train", "0_to_1", 4, is_training=True,
                                  random_seed=1)
  seen = [v for batch in pixel_values(batches.take(12)) for v in batch]
  assert len(seen) == 48 and set(seen) == set(range(15))  # train = first 3 shards, repeated
  assert seen[:15] != list(range(15))
  assert batches.element_spec["image"].shape.as_list() == [4, None, None, 3]  # static batch


def test_input_pipelines_read_disjoint_files(records_dir):
  input_fn = datasets.make_input_fn(config(records_dir), "trainval", is_training=False)
  seen = []
  for index in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index,
                                         num_replicas_in_sync=2)
    batches = list(input_fn(context))
    assert max(len(b) for b in pixel_values(batches)) == 2  # global batch 4 over 2 replicas
    seen.append({v for batch in pixel_values(batches) for v in batch})
  assert seen[0] == set(range(0, 5)) | set(range(10, 15))  # files 0 and 2
  assert seen[1] == set(range(5, 10)) | set(range(15, 20))  # files 1 and 3


def test_the_seed_repeats_the_batches(records_dir):
  def first_batches(seed):
    cfg = config(records_dir, random_seed=seed, preprocessing="to_gray,0_to_1",
                 grayscale_probability=0.5)
    batches = datasets.make_input_fn(cfg, "trainval", is_training=True)()
    return [(b["image"].numpy(), b["label"].numpy()) for b in batches.take(5)]

  first, again, other = first_batches(5), first_batches(5), first_batches(6)
  for (image, label), (image2, label2) in zip(first, again):
    np.testing.assert_array_equal(image, image2)
    np.testing.assert_array_equal(label, label2)
  assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def corrupt(records_dir, how):
  path = os.path.join(records_dir, "train-00001-of-00004")
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:-30] if how == "truncated" else b"not a tfrecord at all" * 5)
  return path


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_corrupt_shard_stops_the_run_naming_the_file(records_dir, how):
  path = corrupt(records_dir, how)
  with pytest.raises(tf.errors.InvalidArgumentError, match=path):
    list(datasets.load_batches(records_dir, "trainval", "0_to_1", 4))


def test_a_record_that_does_not_decode_names_its_shard(records_dir):
  path = os.path.join(records_dir, "train-00002-of-00004")
  with tf.io.TFRecordWriter(path) as writer:
    example = tfrecord.make_example(b"not a png", "PNG", 1, "", 4, 4, 3, "bad")
    writer.write(example.SerializeToString())
  with pytest.raises(tf.errors.InvalidArgumentError, match=path):
    list(datasets.load_batches(records_dir, "trainval", "0_to_1", 4))


def test_skip_corrupt_records_keeps_the_readable_records(records_dir):
  corrupt(records_dir, "truncated")  # shard 1 (values 5..9) loses its last record
  with tf.io.TFRecordWriter(os.path.join(records_dir, "train-00002-of-00004")) as writer:
    for v in (10, 11):
      encoded = tf.io.encode_png(np.full((4, 4, 3), v, np.uint8)).numpy()
      writer.write(tfrecord.make_example(encoded, "PNG", 1, "", 4, 4, 3, "").SerializeToString())
      writer.write(tfrecord.make_example(b"junk", "PNG", 1, "", 4, 4, 3, "").SerializeToString())
  batches = datasets.load_batches(records_dir, "trainval", "0_to_1", 4, skip_corrupt_records=True)
  seen = [v for batch in pixel_values(batches) for v in batch]
  assert seen == list(range(0, 9)) + [10, 11] + list(range(15, 20))


def test_fashion_mnist_records_through_load_batches(fashion_mnist_dir):
  spec = datasets.get_dataset("fashion_mnist", fashion_mnist_dir)
  assert spec.num_classes == 10 and spec.count("test") == 10000
  assert spec.count("trainval") == 60000 and spec.count("train") + spec.count("val") == 60000
  batches = datasets.load_batches(fashion_mnist_dir, "test", "0_to_1", 64,
                                  dataset="fashion_mnist")
  labels = []
  for batch in batches.take(8):
    images = batch["image"].numpy()
    assert images.shape == (64, 28, 28, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.5
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # gray tiled to 3 channels
    labels.extend(batch["label"].numpy().tolist())
  assert set(labels) == set(range(10))


def test_imagenet_on_a_converted_folder_reads_its_manifest(fashion_mnist_dir):
  # An imagenet flagfile given a folder made by build_tfrecords: the folder's 10 classes and
  # counts, not ImageNet's 1000 and 1,231,121 (which made the epoch and schedule wrong).
  spec = datasets.get_dataset("imagenet", fashion_mnist_dir)
  reference = datasets.get_dataset("tfrecord", fashion_mnist_dir)
  assert spec.num_classes == 10
  assert {s: spec.count(s) for s in dataset_spec.SPLITS} == {
      s: reference.count(s) for s in dataset_spec.SPLITS}
  assert spec.count("trainval") == 60000
