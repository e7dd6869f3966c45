"""The building blocks of the contrastive methods' views: geometry and colour on float images.

SimCLR's, BYOL's, SwAV's and AVA's views are compositions of these (simclr_views.py, multi_crop.py,
ava_views.py). Colour ops work on float images in [0, 1]; every random decision takes its seed from
the chain (randomness.py). Written over tf.image rather than Keras's preprocessing layers because
the methods' exact parameter ranges, order and clipping are part of their recipes (SimCLR's
random-order jitter, BYOL's additive brightness), and each example needs its own stateless seed.
"""

import tensorflow as tf

from tfssl.data.randomness import apply_with_probability, next_seed, uniform

# SimCLR's eval crop keeps this fraction of the shorter side (data_util.CROP_PROPORTION).
CROP_PROPORTION = 0.875


def image_size(config, default):
  """--image_size, the views' output size, or the method's default."""
  return int(config.image_size or default)


def to_float01(image):
  return tf.image.convert_image_dtype(image, tf.float32)


# ---- geometry ----
def random_resized_crop(image, size, area_range, aspect_range=(3 / 4, 4 / 3),
                        min_object_covered=0.1, method="bicubic", antialias=False):
  """A random crop covering `area_range` of the image, resized to size x size (float out).

  SimCLR's `random_crop_with_resize` is min_object_covered=0.1 with bicubic; torchvision's
  RandomResizedCrop (SwAV, AVA) has no coverage constraint, hence 0 there.
  """
  shape = tf.shape(image)
  whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bounding_boxes=whole, seed=next_seed(), min_object_covered=min_object_covered,
      aspect_ratio_range=aspect_range, area_range=area_range, max_attempts=100,
      use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, crop_size)
  out = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method=method, antialias=antialias)
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


# ---- colour, on float images in [0, 1] ----
def color_jitter(image, brightness, contrast, saturation, hue, additive_brightness=False):
  """Brightness, contrast, saturation and hue in random order, clipped after each.

  Each factor is drawn from [max(0, 1 - s), 1 + s] (hue: a shift in [-h, h]) as SimCLR v2's
  `color_jitter_rand` and torchvision's ColorJitter. Brightness multiplies by such a factor, except
  with `additive_brightness`, where it adds a delta in [-b, b] (tf.image.random_brightness, as
  DeepMind's BYOL augmentations). tf.image's contrast blends with each channel's own mean where
  torchvision uses the grayscale mean: a small, documented difference.
  """
  def factor(s):
    return uniform(max(0.0, 1.0 - s), 1.0 + s)

  def adjust_brightness(x):
    if additive_brightness:
      return x + uniform(-brightness, brightness)
    return x * factor(brightness)

  branches = [
      lambda x: adjust_brightness(x) if brightness else x,
      lambda x: tf.image.adjust_contrast(x, factor(contrast)) if contrast else x,
      lambda x: tf.image.adjust_saturation(x, factor(saturation)) if saturation else x,
      lambda x: tf.image.adjust_hue(x, uniform(-hue, hue)) if hue else x,
  ]
  order = tf.argsort(tf.random.stateless_uniform([4], next_seed()))
  for i in range(4):
    image = tf.switch_case(order[i], [lambda f=f: f(image) for f in branches])
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape([None, None, 3])
  return image


def luma_grayscale(image):
  """ITU-R 601 luma (tf.image.rgb_to_grayscale) in 3 channels: SimCLR's and torchvision's
  grayscale. The Revisiting `to_gray` op is another operation, the RGB mean (image_ops.to_gray)."""
  return tf.tile(tf.image.rgb_to_grayscale(image), [1, 1, 3])


def gaussian_blur(image, sigma, kernel_size):
  """SimCLR's separable Gaussian blur: an odd kernel, zero ('SAME') padding, per channel."""
  radius = kernel_size // 2
  x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
  weights = tf.exp(-tf.square(x) / (2.0 * tf.square(tf.cast(sigma, tf.float32))))
  weights /= tf.reduce_sum(weights)
  vertical = tf.tile(tf.reshape(weights, [-1, 1, 1, 1]), [1, 1, 3, 1])
  horizontal = tf.tile(tf.reshape(weights, [1, -1, 1, 1]), [1, 1, 3, 1])
  out = tf.nn.depthwise_conv2d(image[None], vertical, [1, 1, 1, 1], "SAME")
  out = tf.nn.depthwise_conv2d(out, horizontal, [1, 1, 1, 1], "SAME")
  return out[0]


def random_blur(image, size, p):
  """Blur with sigma ~ U(0.1, 2.0) and SimCLR's kernel size//10 (made odd), with probability p."""
  kernel = max(3, size // 10 // 2 * 2 + 1)
  return apply_with_probability(lambda x: gaussian_blur(x, uniform(0.1, 2.0), kernel), image, p)


def solarize01(image, threshold=0.5):
  return tf.where(image < threshold, image, 1.0 - image)


def color_distortion(image, strengths, p_jitter=0.8, p_gray=0.2, additive_brightness=False):
  jitter = lambda x: color_jitter(x, *strengths, additive_brightness=additive_brightness)  # noqa: E731
  image = apply_with_probability(jitter, image, p_jitter)
  return apply_with_probability(luma_grayscale, image, p_gray)


def simclr_strengths(s):
  """SimCLR's jitter for strength s: brightness, contrast, saturation 0.8 s; hue 0.2 s."""
  return (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
