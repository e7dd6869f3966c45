"""SimCLR's and BYOL's views as preprocessing ops, and their single-view evaluation image.

  simclr_augment  train: image [2, S, S, 3] in [0, 1], two independent SimCLR views
                  eval:  image [S, S, 3] in [0, 1] (centre crop 0.875 for S > 32, else a resize)
  byol_augment    train: image [2, S, S, 3], BYOL's asymmetric pair (blur 1.0 / 0.1, solarize
                  0 / 0.2); eval as simclr_augment
  center_crop_resize  train and eval: the deterministic eval view, [S, S, 3] in [0, 1] (the eval
                  image of simclr_augment, byol_augment and, at S = S0, multi_crop)

S is --image_size (default 224). Each op runs per example inside tf.data, so each view of each
image draws its own random parameters.
"""

import tensorflow as tf

from tfssl.data.preprocess import register
from tfssl.data.randomness import apply_with_probability
from tfssl.data.view_ops import (color_distortion, eval_view, image_size, random_blur, random_flip,
                                 random_resized_crop, simclr_strengths, solarize01, to_float01)


def simclr_view(image, size, strength, blur):
  """Crop (0.08-1, bicubic), flip, jitter p=0.8, grayscale p=0.2, blur p=0.5 if `blur`."""
  x = random_resized_crop(to_float01(image), size, area_range=(0.08, 1.0))
  x = random_flip(tf.clip_by_value(x, 0.0, 1.0))
  x = color_distortion(x, simclr_strengths(strength))
  if blur:
    x = random_blur(x, size, 0.5)
  return tf.clip_by_value(x, 0.0, 1.0)


# BYOL's colour jitter (paper, table 6): brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1;
# the brightness is a delta added to the image (DeepMind's augmentations.py), not a factor.
BYOL_STRENGTHS = (0.4, 0.4, 0.2, 0.1)


def byol_view(image, size, strength, blur_p, solarize_p):
  x = random_resized_crop(to_float01(image), size, area_range=(0.08, 1.0))
  x = random_flip(tf.clip_by_value(x, 0.0, 1.0))
  x = color_distortion(x, tuple(strength * s for s in BYOL_STRENGTHS), additive_brightness=True)
  x = random_blur(x, size, blur_p)
  x = apply_with_probability(solarize01, x, solarize_p)
  return tf.clip_by_value(x, 0.0, 1.0)


def _pair_op(data, config, is_training, make_views):
  """The two ops' shared frame: the eval view in eval mode, else make_views(image, size, strength,
  blur) stacked; blur follows SimCLR's rule (only for images > 32 px and with --use_blur)."""
  size = image_size(config, 224)
  out = dict(data)
  if not is_training:
    out["image"] = eval_view(data["image"], size)
    return out
  blur = bool(config.use_blur) and size > 32
  strength = float(config.color_jitter_strength)
  out["image"] = tf.stack(make_views(data["image"], size, strength, blur))
  return out


@register("simclr_augment", views=2, eval_op="center_crop_resize")
def simclr_augment(data, config, is_training):
  return _pair_op(data, config, is_training, lambda image, size, strength, blur: [
      simclr_view(image, size, strength, blur) for _ in range(2)])


@register("byol_augment", views=2, eval_op="center_crop_resize")
def byol_augment(data, config, is_training):
  """BYOL's pair: view 1 always blurred and never solarised, view 2 blurred 0.1, solarised 0.2.

  Without blur (images of 32 px or less, or --nouse_blur) neither view is blurred; the TF2 BYOL
  seed's CIFAR code had neither blur nor solarisation and flipped with probability 0.25.
  """
  return _pair_op(data, config, is_training, lambda image, size, strength, blur: [
      byol_view(image, size, strength, 1.0 if blur else 0.0, 0.0),
      byol_view(image, size, strength, 0.1 if blur else 0.0, 0.2)])


@register("center_crop_resize")
def center_crop_resize(data, config, is_training):
  del is_training  # deterministic in both modes: an eval view for kNN banks and probes
  out = dict(data)
  out["image"] = eval_view(data["image"], image_size(config, 224))
  return out
