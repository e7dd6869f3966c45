"""The record schema: make_example -> serialize -> parse_example gives back the image and label."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfssl.data import tfrecord


def _encode(array, fmt):
  out = io.BytesIO()
  Image.fromarray(array).save(out, format=fmt)
  return out.getvalue()


def _record(encoded, fmt="PNG", label=1, height=2, width=3, channels=1, text="cls",
            filename="f.png"):
  return tfrecord.make_example(encoded, fmt, label, text, height, width, channels,
                               filename).SerializeToString()


def test_grayscale_png_round_trip_becomes_rgb_and_label_zero_based():
  gray = np.array([[0, 10, 20], [30, 40, 255]], np.uint8)
  out = tfrecord.parse_example(_record(_encode(gray, "PNG"), label=7))
  assert out["image"].dtype == tf.uint8 and out["image"].shape == (2, 3, 3)
  for c in range(3):
    np.testing.assert_array_equal(out["image"].numpy()[..., c], gray)
  assert out["label"].dtype == tf.int32 and int(out["label"]) == 6


def test_label_offset_zero_keeps_the_stored_label():
  rgb = np.zeros((2, 3, 3), np.uint8)
  out = tfrecord.parse_example(_record(_encode(rgb, "PNG"), label=4), label_offset=0)
  assert int(out["label"]) == 4


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_lossless_formats_decode_exactly(fmt):
  rgb = np.zeros((4, 5, 3), np.uint8)
  rgb[1, 2] = (255, 0, 0)   # GIF is paletted: keep to a few colours so it stays exact
  rgb[3, 4] = (0, 0, 255)
  out = tfrecord.parse_example(_record(_encode(rgb, fmt), fmt=fmt, channels=3))
  np.testing.assert_array_equal(out["image"].numpy(), rgb)


def test_jpeg_decodes_to_its_colour():
  rgb = np.full((8, 8, 3), (200, 40, 90), np.uint8)
  out = tfrecord.parse_example(_record(_encode(rgb, "JPEG"), fmt="JPEG", channels=3))
  assert np.abs(out["image"].numpy().astype(int) - rgb).max() <= 3


def test_every_feature_is_stored():
  rgb = np.zeros((2, 3, 3), np.uint8)
  encoded = _encode(rgb, "PNG")
  full = tfrecord.parse_full_example(_record(encoded, label=3, text="Trouser", channels=3,
                                             filename="x:1"))
  assert full["image/encoded"].numpy() == encoded
  assert full["image/format"].numpy() == b"PNG"
  assert int(full["image/class/label"]) == 3
  assert full["image/class/text"].numpy() == b"Trouser"
  assert (int(full["image/height"]), int(full["image/width"])) == (2, 3)
  assert int(full["image/channels"]) == 3
  assert full["image/filename"].numpy() == b"x:1"
  assert set(tfrecord.FEATURES) == {"image/encoded", "image/format", "image/class/label",
                                    "image/class/text", "image/height", "image/width",
                                    "image/channels", "image/filename"}


def test_parse_works_inside_tf_data_with_rgb_static_channels():
  gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
  dataset = tf.data.Dataset.from_tensors(_record(_encode(gray, "PNG"), label=2))
  dataset = dataset.map(tfrecord.parse_example)
  assert dataset.element_spec["image"].shape.as_list() == [None, None, 3]
  (item,) = list(dataset)
  assert int(item["label"]) == 1 and item["image"].shape == (2, 3, 3)
