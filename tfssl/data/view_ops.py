"""The geometric building blocks of the contrastive methods' views, on float images.

SimCLR's, BYOL's, SwAV's and AVA's views are a crop from here and a photometric part from
view_colour.py (simclr_views.py, multi_crop.py, ava_views.py). Every random decision takes its seed
from the chain (randomness.py). Written over tf.image rather than Keras's preprocessing layers
because the methods' exact parameter ranges are part of their recipes (SimCLR's coverage-
constrained crop, torchvision's and BYOL's samplers: crop_samplers.py), and each example needs its
own stateless seed.
"""

import tensorflow as tf

from tfssl.data.crop_samplers import crop_window
from tfssl.data.randomness import next_seed

# SimCLR's eval crop keeps this fraction of the shorter side (data_util.CROP_PROPORTION).
CROP_PROPORTION = 0.875


def image_size(config, default):
  """--image_size, the views' output size, or the method's default."""
  return int(config.image_size or default)


def to_float01(image):
  return tf.image.convert_image_dtype(image, tf.float32)


# ---- geometry ----
def random_resized_crop(image, size, area_range, aspect_range=(3 / 4, 4 / 3),
                        min_object_covered=0.1, method="bicubic", antialias=False,
                        sampler="simclr"):
  """A random crop covering `area_range` of the image, resized to size x size (float out; in
  [0, 1] for a uint8 image, else in the image's own range).

  `sampler` is whose window it is (crop_samplers.py): SimCLR's (coverage min_object_covered,
  bicubic), torchvision's (SwAV, AVA: bilinear, antialiased like PIL's resize) or DeepMind's
  BYOL's (bicubic).
  """
  shape = tf.shape(image)
  top, left, height, width = crop_window(sampler, shape[0], shape[1], area_range, aspect_range,
                                         min_object_covered)
  crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([height, width, -1]))
  out = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method=method, antialias=antialias)
  if image.dtype == tf.uint8:
    # Resizing is linear: cropping the uint8 image and scaling the crop's output to [0, 1] is
    # the crop of the float image, without converting all of it (0.7 ms per 500x375 photo).
    out = out / 255.0
  out.set_shape([size, size, 3])
  return out


def center_crop_and_resize(image, size, proportion=CROP_PROPORTION, method="bicubic"):
  """The largest centred square scaled by `proportion`, resized to size x size (SimCLR's eval)."""
  shape = tf.shape(image)
  side = tf.cast(tf.math.rint(proportion * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)),
                 tf.int32)
  top = (shape[0] - side + 1) // 2
  left = (shape[1] - side + 1) // 2
  crop = tf.slice(image, [top, left, 0], [side, side, -1])
  out = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method=method)
  out.set_shape([size, size, 3])
  return out


def eval_view(image, size):
  """SimCLR's evaluation image: a centre crop for large images; CIFAR-sized ones are only resized."""
  image = to_float01(image)
  if size > 32:
    out = center_crop_and_resize(image, size)
  else:
    out = tf.image.resize(image, [size, size], method="bicubic")
    out.set_shape([size, size, 3])
  return tf.clip_by_value(out, 0.0, 1.0)


def random_flip(image):
  return tf.image.stateless_random_flip_left_right(image, next_seed())


def simclr_strengths(s):
  """SimCLR's jitter for strength s: brightness, contrast, saturation 0.8 s; hue 0.2 s."""
  return (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
