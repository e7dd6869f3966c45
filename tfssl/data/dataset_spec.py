"""What every dataset source shares: the logical splits and the DatasetSpec interface.

Both the sharded datasets (datasets.py) and the tensorflow_datasets source (tfds_source.py) build
on this module, so neither imports the other.

The logical splits, the original's idea (train shards sorted by name, n of them): `val` is the last
max(1, ceil(n * 40 / 1024)) train shards (ImageNet: the last 40 of 1024), `train` the ones before,
`trainval` all n, and `test` every `validation-*` shard (the official validation set).
"""

import math

SPLITS = ("train", "val", "trainval", "test")
SHUFFLE_BUFFER = 10000  # the original's record shuffle buffer
FILE_CYCLE_LENGTH = 16
VAL_SHARDS_PER_1024 = 40  # the original held out the last 40 of ImageNet's 1024 train shards


def val_shard_count(num_train_shards):
  """How many of the last train shards the `val` split holds: ImageNet's 40 of 1024, scaled."""
  return max(1, math.ceil(num_train_shards * VAL_SHARDS_PER_1024 / 1024))


def split_shards(train_shards, validation_shards):
  """{logical split: shards} from sorted train-* and validation-* shards (None: no such split)."""
  n = len(train_shards)
  cut = n - val_shard_count(n)
  two_parts = cut >= 1
  return {
      "train": train_shards[:cut] if two_parts else None,
      "val": train_shards[cut:] if two_parts else None,
      "trainval": list(train_shards),
      "test": list(validation_shards),
  }


def check_split(split, dataset_name):
  if split not in SPLITS:
    raise ValueError("unknown split %r for dataset %r; known splits: %s"
                     % (split, dataset_name, ", ".join(SPLITS)))


class DatasetSpec:
  """What get_dataset returns: `.name`, `.num_classes`, `.label_offset`, `.count(split)`,
  `.files(split)`, and `.read(...)`, the parsed examples the input pipeline starts from."""

  name = None
  num_classes = None
  label_offset = 0
  labeled = True  # False: images without classes (a converted folder of photos); labels read -1

  def count(self, split):
    raise NotImplementedError

  def files(self, split):
    raise NotImplementedError

  def read(self, split, is_training, input_context=None, seed=None, skip_corrupt=False, subset=None):
    """{"image": uint8 [H, W, 3], "label": int32} of this input pipeline's part of the split;
    shuffled and repeated forever in training, one ordered pass in eval. `subset` (a
    tfssl.data.subsets.Subset) keeps only its records."""
    raise NotImplementedError
