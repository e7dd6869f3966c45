"""The dataset registry, its logical splits, and the input pipeline every task reads through.

Datasets (`get_dataset(name, dataset_dir)`):
- `imagenet`: slim's shards `train-%05d-of-01024` and `validation-%05d-of-00128`, 1000 classes,
  stored labels 1..1000 (label offset 1), with the original's split counts. A folder holding a
  `dataset_info.json` is read through that manifest instead (a folder converted by
  build_tfrecords, given to an imagenet flagfile).
- `fashion_mnist`, `cifar10`, `cifar100`, `tfrecord`: any folder holding a `dataset_info.json`
  manifest (written by `python -m tfssl.tools.build_tfrecords`); classes, label offset and
  per-shard counts come from it. The named ones only warn when the manifest names another dataset.
- `tfds:<name>`: a tensorflow_datasets dataset (see tfds_source.py).

Logical splits, the original's idea for every sharded dataset (train shards sorted by name, n of
them): `val` is the last max(1, ceil(n * 40 / 1024)) train shards (ImageNet: the last 40 of 1024),
`train` the train shards before those, `trainval` all n train shards, and `test` every
`validation-*` shard (the official validation set). Counts are exact: ImageNet's are the
original's table, a manifest's are the sums of its per-shard counts. With one train shard there is
no train/val cut; those two splits then raise and trainval/test still work.

The input pipeline (`make_input_fn`): the split's shard files are divided among the input
pipelines (pipeline i reads files i, i + n, ...). Training shuffles the files (anew each pass),
repeats forever, interleaves 16 files, shuffles records in a 10,000 buffer (or the split's size),
parses, preprocesses, and batches at the per-replica size dropping the remainder (with
--augment_on_device a multi-view chain's photometric part is left to the train step). Eval reads
every file once in order and keeps the last, smaller batch. Every example carries a stateless seed
for its random ops, so the same --random_seed gives the same batches. A corrupt shard stops the input
with an error naming it, or is skipped with --skip_corrupt_records (shard_reader.py).
"""

import json
import os

import tensorflow as tf
from absl import logging

from tfssl.config import Config
from tfssl.data import preprocess as preprocess_lib
from tfssl.data import shard_reader
from tfssl.data import tfrecord
from tfssl.data.dataset_spec import (FILE_CYCLE_LENGTH, SHUFFLE_BUFFER, DatasetSpec, check_split,
                                     split_shards)

MANIFEST = "dataset_info.json"

IMAGENET_TRAIN_SHARDS = 1024
IMAGENET_VALIDATION_SHARDS = 128
IMAGENET_NUM_CLASSES = 1000
IMAGENET_COUNTS = {"train": 1231121, "val": 50046, "trainval": 1281167, "test": 50000}


class ShardedDataset(DatasetSpec):
  """A dataset of TFRecord shards in one folder, with the logical splits of the module docstring."""

  def __init__(self, name, dataset_dir, num_classes, label_offset, shards, counts, classes=None):
    self.name = name
    self.dataset_dir = dataset_dir
    self.num_classes = num_classes
    self.label_offset = label_offset
    self.classes = classes
    self._shards = shards  # split -> [file name] or None
    self._counts = counts  # split -> int or None

  def _available(self, split):
    check_split(split, self.name)
    if self._shards[split] is None:
      raise ValueError("split %r of %s needs at least 2 train shards, %s has 1: use "
                       "--train_split=trainval / --val_split=test, or rebuild with more shards"
                       % (split, self.name, self.dataset_dir))
    if not self._shards[split]:
      raise ValueError("split %r of %s has no shard files in %s: build its validation-* shards, "
                       "or use another split" % (split, self.name, self.dataset_dir))
    return self._shards[split]

  def count(self, split):
    self._available(split)
    return self._counts[split]

  def files(self, split):
    """Full paths of the split's shards, in order; ValueError naming a missing one."""
    names = self._available(split)
    present = {os.path.basename(p) for p in tf.io.gfile.glob(os.path.join(self.dataset_dir, "*"))}
    missing = [n for n in names if n not in present]
    if missing:
      raise ValueError("shard %s of split %r is missing (%d of %d missing): restore or rebuild the "
                       "records in %s" % (os.path.join(self.dataset_dir, missing[0]), split,
                                          len(missing), len(names), self.dataset_dir))
    return [os.path.join(self.dataset_dir, n) for n in names]

  def read(self, split, is_training, input_context=None, seed=None, skip_corrupt=False, subset=None):
    files = self.files(split)
    pipelines, index = _pipeline(input_context)
    if len(files) < pipelines:
      raise ValueError("split %r of %s has %d shard files for %d input pipelines: rebuild it with "
                       "at least %d shards" % (split, self.dataset_dir, len(files), pipelines,
                                               pipelines))
    files = files[index::pipelines]
    sizes = [tf.io.gfile.stat(f).length for f in files]
    records = shard_reader.read_shards(
        files, sizes, ordered=not is_training, skip_corrupt=skip_corrupt,
        cycle_length=FILE_CYCLE_LENGTH, shuffle_files_seed=seed, repeat=is_training)
    count = self.count(split)
    if subset is not None:
      # Before shuffle and parse: a record left out costs a hash, not a decode.
      records = records.filter(subset.keep)
      count = subset.num_examples
    if is_training:
      # A buffer larger than the split only makes the first batch wait for it to fill.
      buffer = max(1, min(SHUFFLE_BUFFER, count or SHUFFLE_BUFFER))
      records = records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    parse = lambda serialized: tfrecord.parse_example(serialized, self.label_offset)
    return shard_reader.parse_records(records, parse, skip_corrupt)


def _pipeline(input_context):
  if input_context is None:
    return 1, 0
  return input_context.num_input_pipelines, input_context.input_pipeline_id


# ---- the registry ----
def _check_dir(name, dataset_dir):
  if not dataset_dir:
    raise ValueError("dataset %r needs a folder: pass --dataset_dir=<folder with its TFRecord "
                     "shards>" % name)
  if not tf.io.gfile.isdir(dataset_dir):
    raise ValueError("dataset directory %s does not exist: pass --dataset_dir=<folder with the "
                     "TFRecord shards>" % dataset_dir)


def imagenet(name, dataset_dir):
  _check_dir(name, dataset_dir)
  if tf.io.gfile.exists(os.path.join(dataset_dir, MANIFEST)):
    # A folder converted by build_tfrecords (the imagenet flagfiles run on one as they are): its
    # manifest, not ImageNet's table, says its classes and sizes.
    logging.info("%s holds %s: reading it through its manifest (as --dataset=tfrecord), not as "
                 "ImageNet's 1024 shards", dataset_dir, MANIFEST)
    return from_manifest("tfrecord", dataset_dir)
  train = ["train-%05d-of-%05d" % (i, IMAGENET_TRAIN_SHARDS) for i in range(IMAGENET_TRAIN_SHARDS)]
  validation = ["validation-%05d-of-%05d" % (i, IMAGENET_VALIDATION_SHARDS)
                for i in range(IMAGENET_VALIDATION_SHARDS)]
  return ShardedDataset(name, dataset_dir, IMAGENET_NUM_CLASSES, tfrecord.LABEL_OFFSET,
                        split_shards(train, validation), dict(IMAGENET_COUNTS))


def _load_manifest(dataset_dir):
  path = os.path.join(dataset_dir, MANIFEST)
  if not tf.io.gfile.exists(path):
    raise ValueError("%s has no %s: convert the images with python -m tfssl.tools.build_tfrecords "
                     "(or use --dataset=imagenet for slim's shards)" % (dataset_dir, MANIFEST))
  try:
    with tf.io.gfile.GFile(path) as f:
      manifest = json.load(f)
    splits = manifest["splits"]
    shards = {split: sorted((s["file"], int(s["num_examples"])) for s in info["shards"])
              for split, info in splits.items()}
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError("%s is not a valid manifest (%s: %s): rebuild it with python -m "
                     "tfssl.tools.build_tfrecords" % (path, type(e).__name__, e)) from None
  return manifest, shards


def from_manifest(name, dataset_dir):
  _check_dir(name, dataset_dir)
  manifest, shards = _load_manifest(dataset_dir)
  if name != "tfrecord" and manifest.get("name") not in (None, name):
    logging.warning("--dataset=%s but %s/%s describes %r; reading it anyway", name, dataset_dir,
                    MANIFEST, manifest.get("name"))
  classes = manifest.get("classes")
  labeled = bool(manifest.get("labeled", True))
  num_classes = manifest.get("num_classes") or (len(classes) if classes else None)
  if not labeled:
    num_classes = 0
  logical = split_shards(shards.get("train", []), shards.get("validation", []))
  files = {s: None if v is None else [f for f, _ in v] for s, v in logical.items()}
  counts = {s: None if v is None else sum(c for _, c in v) for s, v in logical.items()}
  spec = ShardedDataset(name, dataset_dir, num_classes, int(manifest.get("label_offset", 1)),
                        files, counts, classes)
  spec.labeled = labeled
  return spec


_DATASETS = {
    "imagenet": imagenet,
    "fashion_mnist": from_manifest,
    "cifar10": from_manifest,
    "cifar100": from_manifest,
    "tfrecord": from_manifest,
}
TFDS_PREFIX = "tfds:"


def register_dataset(name, factory):
  """Adds `factory(name, dataset_dir) -> dataset` as `name` (for datasets tfssl does not ship)."""
  _DATASETS[name] = factory


def known_datasets():
  return sorted(_DATASETS) + [TFDS_PREFIX + "<name>"]


def is_known(name):
  """Whether get_dataset knows `name`: a registered dataset (register_dataset included) or tfds:<name>."""
  return name in _DATASETS or (name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX))


def get_dataset(name, dataset_dir):
  """The dataset: `.name`, `.num_classes`, `.label_offset`, `.count(split)`, `.files(split)`."""
  if name and name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
    from tfssl.data import tfds_source  # tensorflow_datasets is slow to import; only when asked
    return tfds_source.TfdsDataset(name[len(TFDS_PREFIX):], dataset_dir)
  if name not in _DATASETS:
    raise ValueError("unknown dataset %r: pass --dataset as one of %s"
                     % (name, ", ".join(known_datasets())))
  return _DATASETS[name](name, dataset_dir)


# ---- the input pipeline ----
def _example_seeds(seed, pipeline_index):
  """An endless stream of [2] int64 stateless seeds, one per example; fixed by --random_seed."""
  stream_seed = None if seed is None else (seed * 1000003 + pipeline_index) % (2 ** 62)
  return tf.data.Dataset.random(seed=stream_seed).batch(2, drop_remainder=True)


def make_input_fn(config, split, is_training, batch_size=None, preprocessing=None, subset=None,
                  dataset=None):
  """fn(input_context=None) -> tf.data.Dataset of preprocessed dict batches (module docstring).

  `subset` (tfssl.data.subsets.Subset, for fine-tuning on labelled subsets) keeps only its records.
  `dataset` is the config's dataset when the caller has it already (get_dataset reads manifests).
  """
  dataset = dataset or get_dataset(config.dataset, config.dataset_dir)
  check_split(split, dataset.name)
  global_batch = batch_size or (config.batch_size if is_training else config.eval_batch_size)
  if not global_batch:
    raise ValueError("no batch size for the %s input: pass --batch_size (and --eval_batch_size)"
                     % ("training" if is_training else "eval"))
  # With --augment_on_device the views' photometric part is left to the train step
  # (view_colour.py); otherwise each example's views come out of the chain finished.
  preprocess = preprocess_lib.get_preprocess_fn(
      preprocessing or config.preprocessing, config, is_training,
      defer_colour=bool(is_training and config.augment_on_device))

  def input_fn(input_context=None):
    per_replica = (input_context.get_per_replica_batch_size(global_batch) if input_context
                   else global_batch)
    examples = dataset.read(split, is_training, input_context, config.random_seed,
                            config.skip_corrupt_records, **({"subset": subset} if subset else {}))
    seeds = _example_seeds(config.random_seed, _pipeline(input_context)[1])
    batches = tf.data.Dataset.zip((examples, seeds)).map(
        preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = batches.batch(per_replica, drop_remainder=is_training)
    return batches.prefetch(tf.data.AUTOTUNE)

  return input_fn


def load_batches(dataset_dir, split, preprocessing, batch_size, is_training=False,
                 dataset="tfrecord", **config_overrides):
  """The one-call API: batches of {"image", "label"} from a folder of shards, e.g.
  `load_batches("data/fashion_mnist", "test", "0_to_1", 256)`. Other config fields
  (crop_size, random_seed, ...) go in as keywords."""
  config = Config.make(dataset=dataset, dataset_dir=dataset_dir, preprocessing=preprocessing,
                       batch_size=batch_size, **config_overrides)
  return make_input_fn(config, split, is_training, batch_size=batch_size)()
