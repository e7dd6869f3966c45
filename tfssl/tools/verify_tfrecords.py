"""Reads a built directory back: the shards on disk, their record counts and every image against
dataset_info.json. Returns the problems found, one line each naming the file and the fix."""

import glob
import json
import os

import tensorflow as tf

from tfssl.data import tfrecord
from tfssl.runtime.console import op_error_text

_REBUILD = "delete it and rerun build_tfrecords to rewrite it"


def _decode_checked(serialized):
  parsed = tfrecord.parse_full_example(serialized)
  image = tfrecord.decode_image(parsed["image/encoded"])
  shape = tf.shape(image, out_type=tf.int64)
  size_ok = tf.logical_and(tf.equal(shape[0], parsed["image/height"]),
                           tf.equal(shape[1], parsed["image/width"]))
  return parsed["image/class/label"], size_ok


def _read_shard(path):
  """(records, labels min, labels max, records whose size disagrees with height/width)."""
  dataset = (tf.data.TFRecordDataset(path)
             .map(_decode_checked, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             .batch(256))
  count, low, high, bad_size = 0, None, None, 0
  for labels, size_ok in dataset:
    labels = labels.numpy()
    count += len(labels)
    low = labels.min() if low is None else min(low, labels.min())
    high = labels.max() if high is None else max(high, labels.max())
    bad_size += int((~size_ok.numpy()).sum())
  return count, low, high, bad_size


def _check_shard(path, expected, manifest):
  try:
    count, low, high, bad_size = _read_shard(path)
  except tf.errors.OpError as e:
    return [f"{path}: unreadable ({op_error_text(e.message)}): {_REBUILD}"]
  problems = []
  if count != expected:
    problems.append(f"{path}: dataset_info.json says {expected} records, the file holds {count}: "
                    f"{_REBUILD}")
  first, last = manifest["label_offset"], manifest["label_offset"] + manifest["num_classes"] - 1
  if count and (low < first or high > last):
    problems.append(f"{path}: labels {low}..{high} fall outside {first}..{last}: {_REBUILD}")
  if bad_size:
    problems.append(f"{path}: {bad_size} images differ from their stored height/width: {_REBUILD}")
  return problems


def verify(output_dir):
  """Problems found in `output_dir`, one line each; empty when everything matches."""
  path = os.path.join(output_dir, "dataset_info.json")
  try:
    with open(path) as f:
      manifest = json.load(f)
    splits = manifest["splits"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    return [f"{path}: missing or unreadable ({e}): build the directory first with build_tfrecords"]
  problems = []
  for split, info in splits.items():
    listed = [shard["file"] for shard in info["shards"]]
    on_disk = sorted(os.path.basename(p) for p in glob.glob(os.path.join(output_dir,
                                                                         f"{split}-*-of-*")))
    for name in sorted(set(listed) - set(on_disk)):
      problems.append(f"{os.path.join(output_dir, name)}: listed in dataset_info.json but missing: "
                      "rerun build_tfrecords")
    for name in sorted(set(on_disk) - set(listed)):
      problems.append(f"{os.path.join(output_dir, name)}: not in dataset_info.json: remove it or "
                      "rerun build_tfrecords")
    total = sum(shard["num_examples"] for shard in info["shards"])
    if total != info["num_examples"]:
      problems.append(f"{path}: split {split} says {info['num_examples']} examples but its shards "
                      f"add up to {total}: rerun build_tfrecords")
    for shard in info["shards"]:
      if shard["file"] in on_disk:
        problems += _check_shard(os.path.join(output_dir, shard["file"]), shard["num_examples"],
                                 manifest)
  return problems
