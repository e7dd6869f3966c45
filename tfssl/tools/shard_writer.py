"""Writes one shard so that a final name always holds a complete shard, and tells complete ones apart.

A shard is written as `.<name>.tmp`, renamed to `<name>` when closed, and then recorded in
`.build_state/<name>.json` (records, bytes, the fingerprint of its inputs, skipped images). A rerun
trusts a shard only when that record exists, matches the inputs, and the file's size and record
count agree with it; anything else is written again.
"""

import json
import os
import struct
from typing import NamedTuple

from tfssl.tools import image_encoding

STATE_DIR = ".build_state"


class ShardTask(NamedTuple):
  output_dir: str
  split: str
  index: int
  num_shards: int
  items: list
  classes: list
  strict: bool
  fingerprint: str

  @property
  def name(self):
    return shard_name(self.split, self.index, self.num_shards)


class StrictFailure(Exception):
  """--strict met an unreadable image: args are (file, reason)."""


def shard_name(split, index, num_shards):
  return f"{split}-{index:05d}-of-{num_shards:05d}"


def temp_path(output_dir, name):
  # Hidden, so a glob for train-* never picks up a half-written shard.
  return os.path.join(output_dir, f".{name}.tmp")


def marker_path(output_dir, name):
  return os.path.join(output_dir, STATE_DIR, name + ".json")


def write_json_atomic(path, value):
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def count_records(path):
  """Records in a TFRecord file by walking the length headers; None if the file ends mid-record."""
  size, count, pos = os.path.getsize(path), 0, 0
  with open(path, "rb") as f:
    while pos < size:
      header = f.read(8)
      if len(header) < 8:
        return None
      pos += 8 + 4 + struct.unpack("<Q", header)[0] + 4  # length, its crc, data, data crc
      if pos > size:
        return None
      f.seek(pos)
      count += 1
  return count


def completed_marker(output_dir, name, fingerprint):
  """The state record of a complete shard built from these inputs, else None."""
  try:
    with open(marker_path(output_dir, name)) as f:
      marker = json.load(f)
    path = os.path.join(output_dir, name)
    if (marker.get("fingerprint") != fingerprint or os.path.getsize(path) != marker["bytes"]
        or count_records(path) != marker["num_examples"]):
      return None
    return marker
  except (OSError, ValueError, KeyError, TypeError):
    return None


def write_shard(task, progress=None):
  """Writes task's shard; returns its state record. `progress(n)` is told of every n examples done."""
  # Imported here: parents that only plan and check shards never pay for TensorFlow.
  import tensorflow as tf

  from tfssl.data import tfrecord

  os.makedirs(os.path.join(task.output_dir, STATE_DIR), exist_ok=True)
  tmp = temp_path(task.output_dir, task.name)
  written, skipped, pending = 0, [], 0
  with tf.io.TFRecordWriter(tmp) as writer:
    for item in task.items:
      try:
        enc = image_encoding.encode_item(item)
      except image_encoding.BadImage as e:
        if task.strict:
          raise StrictFailure(item.describe(), str(e)) from None
        skipped.append({"file": item.describe(), "reason": str(e)})
      else:
        example = tfrecord.make_example(
            enc.data, enc.fmt, item.label + tfrecord.LABEL_OFFSET,
            task.classes[item.label] if item.label >= 0 else "",
            enc.height, enc.width, enc.channels, item.filename)
        # deterministic: the feature map's order otherwise follows the process's string hashing,
        # and two runs would write different bytes for the same records.
        writer.write(example.SerializeToString(deterministic=True))
        written += 1
      pending += 1
      if progress and pending == 64:
        progress(pending)
        pending = 0
  if progress and pending:
    progress(pending)
  path = os.path.join(task.output_dir, task.name)
  os.replace(tmp, path)
  marker = {"file": task.name, "num_examples": written, "bytes": os.path.getsize(path),
            "fingerprint": task.fingerprint, "skipped": skipped}
  write_json_atomic(marker_path(task.output_dir, task.name), marker)
  return marker
