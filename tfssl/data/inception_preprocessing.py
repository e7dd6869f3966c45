"""slim's Inception preprocessing in fast mode, the variant the original called (bbox=None).

Training: a distorted bounding-box crop (covering >= 10% of the image, aspect 0.75..1.33, area
5%..100% of the image, 100 attempts, else the whole image), bilinear resize, random left-right
flip, random brightness (max delta 32/255) then random saturation [0.5, 1.5] (fast mode's only
colour ordering), clipped to [0, 1], then scaled to [-1, 1].
Eval: central crop of 0.875 of each side, bilinear resize, scaled to [-1, 1].

One deliberate difference: slim converted with convert_image_dtype, so a float input was taken to
be in [0, 1] already. Every op of the chain language keeps pixels on the [0, 255] scale (`resize`
and `to_gray` return float32 in [0, 255]), so here any input is divided by 255.
"""

import tensorflow as tf

MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.75, 1.33)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100
EVAL_CENTRAL_FRACTION = 0.875
BRIGHTNESS_MAX_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)


def distorted_bounding_box_crop(image, seed, min_object_covered=MIN_OBJECT_COVERED,
                                aspect_ratio_range=ASPECT_RATIO_RANGE, area_range=AREA_RANGE,
                                max_attempts=MAX_ATTEMPTS):
  """A random crop of one image, drawn by sample_distorted_bounding_box around the whole image."""
  whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=whole_image, seed=seed,
      min_object_covered=min_object_covered, aspect_ratio_range=aspect_ratio_range,
      area_range=area_range, max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
  return tf.slice(image, begin, size)


def _to_unit(image):
  return tf.cast(image, tf.float32) / 255.0


def _to_symmetric(image):
  return (image - 0.5) * 2.0


def preprocess_for_train(image, height, width, seed):
  crop_seed, flip_seed, brightness_seed, saturation_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 4))
  image = distorted_bounding_box_crop(_to_unit(image), crop_seed)
  image.set_shape([None, None, 3])
  image = tf.image.resize(image, [height, width], method="bilinear")
  image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  image = tf.image.stateless_random_brightness(image, BRIGHTNESS_MAX_DELTA, brightness_seed)
  image = tf.image.stateless_random_saturation(image, *SATURATION_RANGE, seed=saturation_seed)
  image = tf.clip_by_value(image, 0.0, 1.0)
  return _to_symmetric(image)


def preprocess_for_eval(image, height, width):
  image = tf.image.central_crop(_to_unit(image), central_fraction=EVAL_CENTRAL_FRACTION)
  image = tf.image.resize(image, [height, width], method="bilinear")
  return _to_symmetric(image)


def preprocess_image(image, height, width, is_training, seed=None):
  """One uint8/float [H, W, 3] image in [0, 255] -> float32 [height, width, 3] in [-1, 1]."""
  if is_training:
    if seed is None:
      seed = tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)
    return preprocess_for_train(image, height, width, seed)
  return preprocess_for_eval(image, height, width)
