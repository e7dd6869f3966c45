"""The TFRecord schema: slim's ImageNet features, how to write one example and how to read it back.

Labels are stored as class index + 1 (slim kept 0 for "background"); `parse_example` subtracts
`label_offset` so the pipeline always sees 0-based labels.
"""

import tensorflow as tf

# Stored labels are class index + LABEL_OFFSET; 0 is slim's "background".
LABEL_OFFSET = 1

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string, default_value="JPEG"),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/class/text": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/channels": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
}

# Only these two are needed to train; parsing fewer keys is measurably cheaper per record.
_TRAIN_FEATURES = {k: FEATURES[k] for k in ("image/encoded", "image/class/label")}


def _bytes(value):
  if isinstance(value, str):
    value = value.encode("utf-8")
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def make_example(encoded, fmt, label, text, height, width, channels, filename):
  """One slim-style record. `label` is already offset (class index + 1), as it is stored."""
  return tf.train.Example(features=tf.train.Features(feature={
      "image/encoded": _bytes(encoded),
      "image/format": _bytes(fmt),
      "image/class/label": _int64(label),
      "image/class/text": _bytes(text),
      "image/height": _int64(height),
      "image/width": _int64(width),
      "image/channels": _int64(channels),
      "image/filename": _bytes(filename),
  }))


def decode_image(encoded):
  """JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3]; grayscale and RGBA become RGB, a GIF its first frame."""
  # expand_animations=False keeps the result rank 3, so the shape is known to be [H, W, 3].
  return tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)


def parse_example(serialized, label_offset=LABEL_OFFSET):
  """A serialized record -> {"image": uint8 [H, W, 3], "label": int32, 0-based}."""
  parsed = tf.io.parse_single_example(serialized, _TRAIN_FEATURES)
  label = tf.cast(parsed["image/class/label"], tf.int32) - label_offset
  return {"image": decode_image(parsed["image/encoded"]), "label": label}


def parse_full_example(serialized):
  """Every stored feature, undecoded: for tools that inspect records (verify, visualize)."""
  return tf.io.parse_single_example(serialized, FEATURES)
