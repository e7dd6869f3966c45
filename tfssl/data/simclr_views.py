"""SimCLR's and BYOL's views as preprocessing ops, and their single-view evaluation image.

  simclr_augment  train: image [2, S, S, 3] in [0, 1], two independent SimCLR views
                  eval:  image [S, S, 3] in [0, 1] (centre crop 0.875 for S > 32, else a resize)
  byol_augment    train: image [2, S, S, 3], BYOL's asymmetric pair (DeepMind's crop sampler;
                  blur 1.0 / 0.1, solarize 0 / 0.2), normalised with ImageNet's mean and std
                  eval:  byol_eval_view's image
  center_crop_resize  train and eval: the deterministic eval view, [S, S, 3] in [0, 1] (the eval
                  image of simclr_augment)
  byol_eval_view  train and eval: center_crop_resize's image normalised as byol_augment's views

S is --image_size (default 224). Each op runs per example inside tf.data, so each view of each
image draws its own random parameters; the crops are made there, and the views' photometric part
(flip, colour, blur, solarisation) is applied by view_colour.py: at the end of the example's chain
or, with --augment_on_device, in the train step.
"""

import tensorflow as tf

from tfssl.data.preprocess import register, register_eval_view
from tfssl.data.view_colour import (IMAGENET_MEAN, IMAGENET_STD, colour_key, draw_params,
                                    normalize, to_uint8)
from tfssl.data.view_ops import (eval_view, image_size, random_resized_crop, simclr_strengths,
                                 to_float01)


# The papers' crops cover 0.08-1 of the image's area (--crop_min_area changes the 0.08).
MIN_AREA = 0.08


def _crop(image, size, min_area=MIN_AREA, sampler="simclr"):
  """A crop of a uint8 or [0, 1] image covering min_area-1 of its area, bicubic, in 8 bits until
  its colour is applied (view_colour.to_uint8): SimCLR's sampler (coverage 0.1) or DeepMind's
  BYOL's (crop_samplers.py)."""
  return to_uint8(random_resized_crop(image, size, area_range=(min_area, 1.0), sampler=sampler))


def simclr_view(image, size, strength, blur, min_area=MIN_AREA):
  """(crop, its photometric parameters): flip, jitter p=0.8, grayscale p=0.2, blur p=0.5 if
  `blur` (view_colour.py applies them)."""
  return _crop(image, size, min_area), draw_params(simclr_strengths(strength),
                                                   p_blur=0.5 if blur else 0.0)


# BYOL's colour jitter (paper, table 6): brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1;
# the brightness is a delta added to the image (DeepMind's augmentations.py), not a factor.
BYOL_STRENGTHS = (0.4, 0.4, 0.2, 0.1)


def byol_view(image, size, strength, blur_p, solarize_p, min_area=MIN_AREA):
  return _crop(image, size, min_area, sampler="byol"), draw_params(
      tuple(strength * s for s in BYOL_STRENGTHS), p_blur=blur_p, p_solarize=solarize_p,
      additive_brightness=True)


def byol_eval_image(image, size):
  """BYOL's evaluation image: SimCLR's (DeepMind's centre crop keeps 224/256 = 0.875 of the
  shorter side too) with ImageNet's mean and std, as its eval_experiment.py normalises."""
  return normalize(eval_view(image, size), IMAGENET_MEAN, IMAGENET_STD)


def _pair_op(data, config, is_training, make_views, style=""):
  """The two ops' shared frame: the eval view in eval mode, else make_views(image, size,
  strength, blur, min_area) stacked, with their parameters under image's colour key for
  `style` (view_colour.STYLES); blur follows SimCLR's rule (only for images > 32 px and with
  --use_blur)."""
  size = image_size(config, 224)
  out = dict(data)
  if not is_training:
    out["image"] = (byol_eval_image if style == "byol" else eval_view)(data["image"], size)
    return out
  blur = bool(config.use_blur) and size > 32
  strength = float(config.color_jitter_strength)
  image = data["image"]
  image = image if image.dtype == tf.uint8 else to_float01(image)
  views, params = zip(*make_views(image, size, strength, blur, float(config.crop_min_area)))
  out["image"], out[colour_key("image", style)] = tf.stack(views), tf.stack(params)
  return out


@register("simclr_augment", views=2, eval_op="center_crop_resize", deferred_colour=True)
def simclr_augment(data, config, is_training):
  return _pair_op(data, config, is_training, lambda image, size, strength, blur, area: [
      simclr_view(image, size, strength, blur, area) for _ in range(2)])


@register("byol_augment", views=2, eval_op="byol_eval_view", deferred_colour=True)
def byol_augment(data, config, is_training):
  """BYOL's pair: view 1 always blurred and never solarised, view 2 blurred 0.1, solarised 0.2;
  DeepMind's crop (one draw of area and aspect, clamped to the image), and both views
  normalised with ImageNet's mean and std after their colour, as byol_experiment.py does.

  Without blur (images of 32 px or less, or --nouse_blur) neither view is blurred; the TF2 BYOL
  seed's CIFAR code had neither blur nor solarisation and flipped with probability 0.25.
  """
  return _pair_op(data, config, is_training, lambda image, size, strength, blur, area: [
      byol_view(image, size, strength, 1.0 if blur else 0.0, 0.0, area),
      byol_view(image, size, strength, 0.1 if blur else 0.0, 0.2, area)], style="byol")


register_eval_view("center_crop_resize",
                   lambda image, config: eval_view(image, image_size(config, 224)))
register_eval_view("byol_eval_view",
                   lambda image, config: byol_eval_image(image, image_size(config, 224)))
