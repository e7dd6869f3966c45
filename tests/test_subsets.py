"""The labelled subset of fine-tuning: class-balanced sizes by hand, repeatable per seed, the
subset file's exact records, the errors a user can cause, and the record filter on real shards."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config
from tfssl.data import datasets, shard_reader, subsets, tfrecord

# Three classes of 30, 20 and 10 records: small enough to count the subsets by hand.
CLASS_SIZES = (30, 20, 10)


def _png(value=0):
  return tf.io.encode_png(tf.fill([2, 2, 1], tf.constant(value, tf.uint8))).numpy()


def _records(with_filenames=True):
  """(stored filename, 0-based label, tf.train.Example) for every record, class by class."""
  out = []
  for label, size in enumerate(CLASS_SIZES):
    for i in range(size):
      png = _png(i)  # distinct pixels: records without names are still distinct records
      # A directory in the stored name: subset files list basenames only.
      name = "train/c%d/c%d_%02d.png" % (label, label, i) if with_filenames else ""
      example = tfrecord.make_example(png, "PNG", label + 1, "c%d" % label, 2, 2, 1, name)
      out.append((name, label, example))
  return out


def write_dataset(folder, num_shards=3, with_filenames=True, order_seed=0):
  """A `tfrecord` dataset of `num_shards` train shards (records dealt round robin)."""
  os.makedirs(folder, exist_ok=True)
  records = _records(with_filenames)
  order = np.random.RandomState(order_seed).permutation(len(records))
  shards = []
  for s in range(num_shards):
    name = "train-%05d-of-%05d" % (s, num_shards)
    chosen = [records[i] for i in order[s::num_shards]]
    with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
      for _, _, example in chosen:
        writer.write(example.SerializeToString())
    shards.append({"file": name, "num_examples": len(chosen)})
  manifest = {"name": "tiny", "classes": ["c0", "c1", "c2"], "num_classes": 3, "label_offset": 1,
              "splits": {"train": {"num_examples": len(records), "shards": shards}}}
  with open(os.path.join(folder, "dataset_info.json"), "w") as f:
    json.dump(manifest, f)
  return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
  return write_dataset(str(tmp_path_factory.mktemp("tiny")))


def config_for(folder, **overrides):
  values = dict(task="finetune", dataset="tfrecord", dataset_dir=folder, train_split="trainval")
  values.update(overrides)
  return Config.make(**values)


def subset_for(folder, **overrides):
  config = config_for(folder, **overrides)
  return subsets.training_subset(config, datasets.get_dataset("tfrecord", folder))


def kept_names(folder, subset, split="trainval"):
  """Basenames of the records that Subset.keep passes, read through the real shard reader."""
  spec = datasets.get_dataset("tfrecord", folder)
  files = spec.files(split)
  records = shard_reader.read_shards(files, [os.path.getsize(f) for f in files], ordered=True,
                                     skip_corrupt=False)
  records = records.filter(subset.keep)
  names = records.map(lambda record, shard: tfrecord.parse_full_example(record)["image/filename"])
  return sorted(os.path.basename(n.decode()) for n in names.as_numpy_iterator())


def write_list(path, names):
  with open(path, "w") as f:
    f.write("\n".join(names) + "\n")
  return str(path)


# ---- --subset_percent ----
@pytest.mark.parametrize("percent, expected", [
    (10, (3, 2, 1)),    # 3.0, 2.0, 1.0
    (5, (2, 1, 1)),     # 1.5 rounds up to 2; 1.0; 0.5 rounds up to 1
    (1, (1, 1, 1)),     # 0.3, 0.2, 0.1: at least one per class
    (25, (8, 5, 3)),    # 7.5 -> 8, 5.0, 2.5 -> 3 (half up: Python's round() would give 2)
    (50, (15, 10, 5)),
    (100, CLASS_SIZES),
])
def test_percent_subset_takes_the_rounded_share_of_every_class(tiny_dir, percent, expected):
  subset = subset_for(tiny_dir, subset_percent=percent, random_seed=3)
  assert subset.class_counts == expected
  assert subset.num_examples == sum(expected)
  names = kept_names(tiny_dir, subset)
  assert len(names) == sum(expected)
  per_class = tuple(sum(n.startswith("c%d_" % c) for n in names) for c in range(3))
  assert per_class == expected


def test_same_seed_same_subset_other_seed_another(tiny_dir):
  a = kept_names(tiny_dir, subset_for(tiny_dir, subset_percent=10, random_seed=1))
  b = kept_names(tiny_dir, subset_for(tiny_dir, subset_percent=10, random_seed=1))
  c = kept_names(tiny_dir, subset_for(tiny_dir, subset_percent=10, random_seed=2))
  assert a == b
  assert a != c


def test_no_seed_means_seed_zero(tiny_dir):
  unseeded = subset_for(tiny_dir, subset_percent=10)
  zero = subset_for(tiny_dir, subset_percent=10, random_seed=0)
  np.testing.assert_array_equal(unseeded.fingerprints, zero.fingerprints)


def test_the_subset_does_not_depend_on_the_sharding(tmp_path):
  three = write_dataset(str(tmp_path / "three"), num_shards=3, order_seed=0)
  two = write_dataset(str(tmp_path / "two"), num_shards=2, order_seed=7)
  a = kept_names(three, subset_for(three, subset_percent=10, random_seed=5))
  b = kept_names(two, subset_for(two, subset_percent=10, random_seed=5))
  assert a == b


def test_percent_mask_draws_from_each_class_with_the_seed():
  labels = np.array([0] * 4 + [1] * 6)
  names = np.array([b"n%d" % i for i in range(10)], dtype=object)
  fps = np.arange(10, dtype=np.int64)
  mask = subsets.percent_mask(labels, names, fps, 50, seed=11)
  # By hand: per class, a RandomState(11) permutation of the class's sorted members.
  rng = np.random.RandomState(11)
  expected = np.zeros(10, bool)
  expected[np.arange(4)[rng.permutation(4)[:2]]] = True
  expected[4 + rng.permutation(6)[:3]] = True
  np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("percent", [0, -1, 100.5])
def test_percent_outside_0_100_is_refused(tiny_dir, percent):
  with pytest.raises(ValueError, match="subset_percent"):
    subset_for(tiny_dir, subset_percent=percent)


def test_no_subset_flags_means_the_whole_split(tiny_dir):
  assert subset_for(tiny_dir) is None


def test_a_subset_file_replaces_a_percentage(tiny_dir, tmp_path):
  listed = write_list(tmp_path / "list.txt", ["c0_00.png"])
  subset = subset_for(tiny_dir, subset_percent=10, subset_file=listed)
  assert kept_names(tiny_dir, subset) == ["c0_00.png"]


# ---- --subset_file ----
def test_subset_file_selects_exactly_the_listed_records(tiny_dir, tmp_path):
  listed = ["c0_07.png", "c0_29.png", "c1_00.png", "c2_09.png"]
  path = write_list(tmp_path / "list.txt", ["", listed[0]] + listed[1:] + [""])
  subset = subset_for(tiny_dir, subset_file=path)
  assert kept_names(tiny_dir, subset) == sorted(listed)
  assert subset.num_examples == 4
  assert subset.class_counts == (2, 1, 1)


def test_subset_file_may_list_paths(tiny_dir, tmp_path):
  path = write_list(tmp_path / "list.txt", ["some/dir/c1_05.png"])
  assert kept_names(tiny_dir, subset_for(tiny_dir, subset_file=path)) == ["c1_05.png"]


def test_subset_file_with_unknown_names_is_refused(tiny_dir, tmp_path):
  path = write_list(tmp_path / "list.txt", ["c0_01.png", "n01440764_10026.JPEG", "c9_99.png"])
  with pytest.raises(ValueError) as error:
    subset_for(tiny_dir, subset_file=path)
  message = str(error.value)
  assert "2 of its 3 names" in message and "n01440764_10026.JPEG" in message
  assert path in message


def test_subset_file_matching_nothing_is_refused(tiny_dir, tmp_path):
  path = write_list(tmp_path / "list.txt", ["n01440764_10026.JPEG", "n01440764_10027.JPEG"])
  with pytest.raises(ValueError, match="none of its 2 names"):
    subset_for(tiny_dir, subset_file=path)


def test_empty_or_missing_subset_file_is_refused(tiny_dir, tmp_path):
  with pytest.raises(ValueError, match="lists no filenames"):
    subset_for(tiny_dir, subset_file=write_list(tmp_path / "empty.txt", [""]))
  with pytest.raises(ValueError, match="does not exist"):
    subset_for(tiny_dir, subset_file=str(tmp_path / "nowhere.txt"))


def first_name(shard):
  record = next(iter(tf.data.TFRecordDataset(shard)))
  return os.path.basename(tfrecord.parse_full_example(record)["image/filename"].numpy().decode())


def test_names_outside_the_train_split_point_at_train_split(tiny_dir, tmp_path):
  # `train` leaves out the last shard (the `val` split); list one record of each.
  spec = datasets.get_dataset("tfrecord", tiny_dir)
  val_name = first_name(spec.files("val")[0])
  train_name = first_name(spec.files("train")[0])
  path = write_list(tmp_path / "list.txt", [train_name, val_name])
  with pytest.raises(ValueError, match="--train_split") as error:
    subset_for(tiny_dir, subset_file=path, train_split="train")
  assert val_name in str(error.value)
  assert kept_names(tiny_dir, subset_for(tiny_dir, subset_file=path)) == sorted([train_name,
                                                                                 val_name])


def test_records_without_filenames_cannot_match_a_subset_file(tmp_path):
  folder = write_dataset(str(tmp_path / "nameless"), with_filenames=False)
  path = write_list(tmp_path / "list.txt", ["c0_00.png"])
  with pytest.raises(ValueError, match="carry no image/filename"):
    subset_for(folder, subset_file=path)
  # --subset_percent does not need the filenames.
  assert subset_for(folder, subset_percent=10).num_examples == 6


def test_a_dataset_without_shards_is_refused():
  class NoShards:
    label_offset = 1

    def files(self, split):
      raise ValueError("tfds:mnist is read through tensorflow_datasets and has no shard file list")

  config = Config.make(task="finetune", subset_percent=10, train_split="train")
  with pytest.raises(ValueError, match="needs the split's TFRecord shards"):
    subsets.training_subset(config, NoShards())


def test_identical_records_are_kept_together(tmp_path):
  # Two byte-identical records share a fingerprint: both pass, and both are counted.
  folder = str(tmp_path / "dupes")
  os.makedirs(folder)
  example = tfrecord.make_example(_png(), "PNG", 1, "c0", 2, 2, 1, "same.png")
  other = tfrecord.make_example(_png(), "PNG", 1, "c0", 2, 2, 1, "other.png")
  for s in range(2):
    with tf.io.TFRecordWriter(os.path.join(folder, "train-%05d-of-00002" % s)) as writer:
      writer.write(example.SerializeToString())
      writer.write(other.SerializeToString())
  manifest = {"name": "dupes", "num_classes": 1, "label_offset": 1, "splits": {"train": {
      "num_examples": 4, "shards": [{"file": "train-%05d-of-00002" % s, "num_examples": 2}
                                    for s in range(2)]}}}
  with open(os.path.join(folder, "dataset_info.json"), "w") as f:
    json.dump(manifest, f)
  subset = subset_for(folder, subset_file=write_list(tmp_path / "l.txt", ["same.png"]))
  assert subset.num_examples == 2
  assert kept_names(folder, subset) == ["same.png", "same.png"]
