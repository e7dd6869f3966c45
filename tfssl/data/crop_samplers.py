"""Where a random-resized crop falls: the three originals' samplers, stateless and seeded.

Each sampler maps an image's (height, width) to a crop window (top, left, crop height, crop width)
and draws from the chain's seeds (randomness.next_seed). The three methods' originals draw
differently, and the difference is visible in the crops (issue #30: mean area 0.39 against 0.52
for BYOL's):

  simclr       SimCLR's `random_crop_with_resize`: tf.image's sample_distorted_bounding_box
               (area and aspect ranges, a coverage constraint, 100 attempts, the whole image
               when none fits).
  torchvision  torchvision's RandomResizedCrop.get_params (SwAV, and AVA's MindSpore twin):
               area ~ U(scale) of the image, log-aspect ~ U(log ratio), w = round(sqrt(A r)),
               h = round(sqrt(A / r)); the first of 10 tries that fits, at a uniform offset;
               else a centre crop of the whole image with its aspect clamped to the range.
  byol         DeepMind's BYOL (`byol/utils/dataset.py`, `_decode_and_random_crop`): one draw
               of the same area and aspect, w and h clamped to the image, a uniform offset.

Written here because tf.image has only the first (the others' arithmetic is a handful of scalar
ops). The crops are made on the host in every mode; --augment_on_device moves only the colour.
"""

import math

import tensorflow as tf

from tfssl.data.randomness import next_seed

SAMPLERS = ("simclr", "torchvision", "byol")
TORCHVISION_TRIES = 10


def _uniform(shape, low, high):
  return tf.random.stateless_uniform(shape, next_seed(), low, high, dtype=tf.float32)


def _offset(room):
  """A uniform integer in [0, room] (room >= 0), as torch.randint(0, room + 1) draws it."""
  draw = tf.random.stateless_uniform([], next_seed(), dtype=tf.float32)
  return tf.minimum(tf.cast(draw * tf.cast(room + 1, tf.float32), tf.int32), room)


def _sides(height, width, areas, log_ratios):
  """round(sqrt(A r)), round(sqrt(A / r)) for the drawn areas (fractions) and log-aspects.

  Computed in float64 as the originals' Python/NumPy floats are, and rounded half to even as
  Python's round and tf.round are."""
  area = tf.cast(height * width, tf.float64) * tf.cast(areas, tf.float64)
  ratio = tf.exp(tf.cast(log_ratios, tf.float64))
  w = tf.cast(tf.round(tf.sqrt(area * ratio)), tf.int32)
  h = tf.cast(tf.round(tf.sqrt(area / ratio)), tf.int32)
  return h, w


def simclr_window(height, width, area_range, aspect_range, min_object_covered=0.1):
  shape = tf.stack([height, width, 3])
  whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bounding_boxes=whole, seed=next_seed(), min_object_covered=min_object_covered,
      aspect_ratio_range=aspect_range, area_range=area_range, max_attempts=100,
      use_image_if_no_bounding_boxes=True)
  return begin[0], begin[1], size[0], size[1]


def torchvision_window(height, width, area_range, aspect_range):
  log_low, log_high = math.log(aspect_range[0]), math.log(aspect_range[1])
  h, w = _sides(height, width, _uniform([TORCHVISION_TRIES], *area_range),
                _uniform([TORCHVISION_TRIES], log_low, log_high))
  fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)  # 0 when none fits: unused
  # The fallback: the whole image, its aspect clamped to the range, centred.
  in_ratio = tf.cast(width, tf.float64) / tf.cast(height, tf.float64)
  narrow = in_ratio < aspect_range[0]
  wide = in_ratio > aspect_range[1]
  fallback_w = tf.where(wide, tf.cast(tf.round(tf.cast(height, tf.float64) * aspect_range[1]),
                                      tf.int32), width)
  fallback_h = tf.where(narrow, tf.cast(tf.round(tf.cast(width, tf.float64) / aspect_range[0]),
                                        tf.int32), height)
  found = tf.reduce_any(fits)
  crop_h = tf.where(found, h[first], fallback_h)
  crop_w = tf.where(found, w[first], fallback_w)
  top = tf.where(found, _offset(height - crop_h), (height - crop_h) // 2)
  left = tf.where(found, _offset(width - crop_w), (width - crop_w) // 2)
  return top, left, crop_h, crop_w


def byol_window(height, width, area_range, aspect_range):
  h, w = _sides(height, width, _uniform([], *area_range),
                _uniform([], math.log(aspect_range[0]), math.log(aspect_range[1])))
  # DeepMind's code clamps to the image but not from below; a crop is at least one pixel.
  h = tf.clip_by_value(h, 1, height)
  w = tf.clip_by_value(w, 1, width)
  return _offset(height - h), _offset(width - w), h, w


def crop_window(sampler, height, width, area_range, aspect_range=(3 / 4, 4 / 3),
                min_object_covered=0.1):
  """(top, left, crop height, crop width), int32 scalars, drawn by `sampler` (SAMPLERS).

  min_object_covered is the simclr sampler's coverage constraint (the others have none)."""
  if sampler == "simclr":
    return simclr_window(height, width, area_range, aspect_range, min_object_covered)
  if sampler == "torchvision":
    return torchvision_window(height, width, area_range, aspect_range)
  if sampler == "byol":
    return byol_window(height, width, area_range, aspect_range)
  raise ValueError("unknown crop sampler %r: use one of %s" % (sampler, ", ".join(SAMPLERS)))
