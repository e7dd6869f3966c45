"""The labelled subset of semi-supervised fine-tuning, chosen once and applied as a record filter.

`training_subset(config, dataset_spec)` reads the train split once (file order, no image decode:
only image/filename and image/class/label are parsed) and picks:
- `--subset_percent=p` (any p in (0, 100]): per class c with n_c records, round(n_c * p / 100)
  records (half rounds up), at least 1. Within a class the records are sorted by (filename,
  record fingerprint) and a permutation drawn with `--random_seed` (0 when unset, so every worker
  of a run picks the same subset) takes the first ones. Sorting first makes the subset depend on
  the records, not on how they were sharded. NumPy's legacy RandomState is used because its
  streams are frozen across NumPy versions: a seed names the same subset on every install.
- `--subset_file`: one image filename per line (SimCLR's 1percent.txt / 10percent.txt, names like
  `n01440764_10026.JPEG`). A record matches when the basename of its image/filename is listed; a
  listed name that matches no record is an error (one line naming the file and the first missing
  name), as is a file that lists nothing. It takes precedence over --subset_percent, so that a
  command line can swap a flagfile's percentage for SimCLR's list.
Neither flag: no subset (None), the whole split trains.

The result, a `Subset`, identifies its records by a 64-bit fingerprint of the serialized record
bytes. `Subset.keep(record)` is a tf.data predicate on serialized records: it hashes the bytes and
looks them up in the sorted fingerprints, so it parses nothing (it cannot fail on a record the
parser would reject; the parse that follows reports those as usual) and it runs before decoding,
so the records left out cost a read and a hash, not a JPEG decode. Byte-identical records share a
fingerprint and are kept or left out together; `num_examples` counts every record kept. Two
different records colliding in 64 bits among ImageNet's 1.28M has a chance of about 1e-7.

Scans are memoised per process (the trainer needs the subset size for its epoch length and the
input pipeline needs the filter; both get the same object).
"""

import dataclasses
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfssl.data import shard_reader

DEFAULT_SEED = 0
# to_hash_bucket_fast is FarmHash's 64-bit fingerprint modulo this: the largest int64 bucket count.
_BUCKETS = 2 ** 63 - 1
_SCAN_BATCH = 4096

_SCAN_FEATURES = {
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def fingerprint(records):
  """int64 fingerprints of serialized records (any shape)."""
  return tf.strings.to_hash_bucket_fast(records, _BUCKETS)


@dataclasses.dataclass(frozen=True, eq=False)
class Subset:
  """Which records of a split to train on; see the module docstring."""
  fingerprints: np.ndarray  # sorted, unique int64
  num_examples: int  # records of the split that `keep` passes
  class_counts: tuple  # records kept per class
  description: str  # for logs: how the subset was chosen

  def keep(self, record, *unused):
    """tf.bool: whether this serialized record is in the subset (usable as a tf.data filter)."""
    del unused  # the reader's (record, shard name) pairs can be passed as they are
    table = tf.constant(self.fingerprints, tf.int64)
    key = fingerprint(record)
    index = tf.searchsorted(table, tf.reshape(key, [1]))[0]
    index = tf.minimum(index, tf.size(table, out_type=index.dtype) - 1)
    return tf.equal(tf.gather(table, index), key)


@dataclasses.dataclass(frozen=True, eq=False)
class SplitIndex:
  """Every record of a split in file order: fingerprint, 0-based label, image/filename."""
  fingerprints: np.ndarray
  labels: np.ndarray
  filenames: np.ndarray  # bytes objects


_SCANS = {}


def scan_split(dataset_spec, split, skip_corrupt=False):
  """The SplitIndex of a sharded split, read once per process."""
  try:
    files = dataset_spec.files(split)
  except ValueError as e:
    raise ValueError("a labelled subset needs the split's TFRecord shards: %s" % e) from None
  sizes = [tf.io.gfile.stat(f).length for f in files]
  key = (tuple(files), tuple(sizes), int(dataset_spec.label_offset), bool(skip_corrupt))
  if key not in _SCANS:
    _SCANS[key] = _scan(files, sizes, int(dataset_spec.label_offset), skip_corrupt)
  return _SCANS[key]


def _scan(files, sizes, label_offset, skip_corrupt):
  def light_parse(serialized):
    parsed = tf.io.parse_single_example(serialized, _SCAN_FEATURES)
    return {"fingerprint": fingerprint(serialized),
            "label": tf.cast(parsed["image/class/label"], tf.int32) - label_offset,
            "filename": parsed["image/filename"]}

  records = shard_reader.read_shards(files, sizes, ordered=True, skip_corrupt=skip_corrupt)
  parsed = shard_reader.parse_records(records, light_parse, skip_corrupt)
  parts = {"fingerprint": [], "label": [], "filename": []}
  for batch in parsed.batch(_SCAN_BATCH).prefetch(2):
    for name in parts:
      parts[name].append(batch[name].numpy())
  joined = {name: np.concatenate(v) if v else np.zeros([0]) for name, v in parts.items()}
  return SplitIndex(fingerprints=joined["fingerprint"].astype(np.int64),
                    labels=joined["label"].astype(np.int64),
                    filenames=joined["filename"].astype(object))


def percent_mask(labels, filenames, fingerprints, percent, seed):
  """bool mask over the records: the class-balanced `percent` subset drawn with `seed`."""
  if not 0.0 < float(percent) <= 100.0:
    raise ValueError("--subset_percent=%s: give a percentage in (0, 100], e.g. 1 or 10" % percent)
  rng = np.random.RandomState(seed)
  mask = np.zeros(len(labels), bool)
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    order = sorted(members, key=lambda i: (filenames[i], int(fingerprints[i])))
    # round half up (Python's round() would send 0.5 to 0 and 2.5 to 2).
    take = int(np.floor(len(members) * float(percent) / 100.0 + 0.5))
    take = min(len(members), max(1, take))
    chosen = rng.permutation(len(order))[:take]
    mask[np.asarray(order)[chosen]] = True
  return mask


def read_subset_file(path):
  """The basenames listed in a subset file (blank lines ignored)."""
  if not tf.io.gfile.exists(path):
    raise ValueError("--subset_file %s does not exist: give a file with one image filename per line"
                     % path)
  with tf.io.gfile.GFile(path) as f:
    names = [line.strip() for line in f]
  return [os.path.basename(n) for n in names if n]


def listed_mask(filenames, listed, source, split):
  """bool mask over the records whose image/filename basename is in `listed`."""
  if not listed:
    raise ValueError("--subset_file %s lists no filenames: give one image filename per line"
                     % source)
  basenames = np.array([os.path.basename(_text(f)) for f in filenames], dtype=object)
  if len(basenames) and not any(basenames):
    raise ValueError("the records of split %r carry no image/filename, so --subset_file %s cannot "
                     "match them: rebuild them with python -m tfssl.tools.build_tfrecords, or use "
                     "--subset_percent" % (split, source))
  present = set(basenames.tolist())
  missing = [n for n in dict.fromkeys(listed) if n not in present]
  if len(missing) == len(set(listed)):
    raise ValueError("--subset_file %s: none of its %d names is an image of split %r (first: %s); "
                     "check the file and --train_split" % (source, len(set(listed)), split,
                                                            missing[0]))
  if missing:
    raise ValueError("--subset_file %s: %d of its %d names are not images of split %r (first: %s); "
                     "check --train_split (SimCLR's lists name images of the whole ImageNet train "
                     "set: --train_split=trainval) or fix the file"
                     % (source, len(missing), len(set(listed)), split, missing[0]))
  return np.isin(basenames, np.array(sorted(set(listed)), dtype=object))


def _text(value):
  return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def subset_from_mask(index, mask, description):
  chosen = np.unique(index.fingerprints[mask])
  kept = np.isin(index.fingerprints, chosen)
  labels = index.labels[kept]
  num_classes = int(index.labels.max()) + 1 if len(index.labels) else 0
  counts = tuple(int(c) for c in np.bincount(labels, minlength=num_classes))
  return Subset(fingerprints=chosen, num_examples=int(kept.sum()), class_counts=counts,
                description=description)


def training_subset(config, dataset_spec) -> Optional[Subset]:
  """The Subset of config.train_split that --subset_percent / --subset_file name, or None."""
  percent, path = config.subset_percent, config.subset_file
  if percent is None and not path:
    return None
  if percent is not None and path:
    # A flagfile's --subset_percent stays set when a command line adds SimCLR's list.
    logging.info("--subset_file=%s given: it replaces --subset_percent=%s", path, percent)
    percent = None
  if percent is not None and not 0.0 < float(percent) <= 100.0:
    raise ValueError("--subset_percent=%s: give a percentage in (0, 100], e.g. 1 or 10" % percent)
  listed = read_subset_file(path) if path else None
  split = config.train_split
  index = scan_split(dataset_spec, split, bool(config.skip_corrupt_records))
  if percent is not None:
    seed = DEFAULT_SEED if config.random_seed is None else int(config.random_seed)
    mask = percent_mask(index.labels, index.filenames, index.fingerprints, percent, seed)
    description = "%g%% of split %r per class, seed %d" % (float(percent), split, seed)
  else:
    mask = listed_mask(index.filenames, listed, path, split)
    description = "the %d images of split %r listed in %s" % (len(set(listed)), split, path)
  subset = subset_from_mask(index, mask, description)
  if not subset.num_examples:
    where = getattr(dataset_spec, "dataset_dir", config.dataset)
    raise ValueError("split %r of %s has no records to choose a subset from: check --train_split "
                     "and --dataset_dir" % (split, where))
  logging.info("Labelled subset: %d of %d records (%s); per class %s", subset.num_examples,
               len(index.labels), description, list(subset.class_counts))
  return subset
