"""AVA's (AAG, Tu et al. 2020) views as preprocessing ops, as the MindSpore seed makes them
(its RandomResizedCrop samples as torchvision's; its colour ops are PIL's).

  ava_views      train: image [3, S, S, 3] = (x, y, aux), normalised with the CIFAR mean/std
                 eval:  image [S, S, 3], resized if needed and normalised the same way
  ava_eval_view  train and eval: the eval image of ava_views

S is --image_size (default 32). x and y are standard views; aux is a RandAugment view
(randaugment.py).
"""

import tensorflow as tf

from tfssl.data.preprocess import register, register_eval_view
from tfssl.data.randaugment import quantize, randaugment
from tfssl.data.view_colour import apply_params, draw_params
from tfssl.data.view_ops import image_size, random_flip, random_resized_crop, to_float01

# The AVA seed's CIFAR Normalize() constants (its dataset transform).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def normalize_cifar(image01):
  return (image01 - tf.constant(CIFAR_MEAN)) / tf.constant(CIFAR_STD)


def ava_standard_view(image, size):
  """Crop (0.2-1), colour adjust 0.4 always (hue 0.4 too; random order), grayscale p=0.2, flip."""
  x = random_resized_crop(to_float01(image), size, area_range=(0.2, 1.0), method="bilinear",
                          antialias=True, sampler="torchvision")
  # Jitter always (p=1), then grayscale p=0.2 and flip (which commutes with both), on this one
  # view, with PIL's contrast and saturation: AVA's views stay on the host, normalised and
  # beside a RandAugment one.
  params = draw_params((0.4, 0.4, 0.4, 0.4), p_jitter=1.0, p_gray=0.2)
  return apply_params(tf.clip_by_value(x, 0.0, 1.0)[None], params[None], form="pil")[0]


def ava_aux_view(image, size, n, m):
  """Crop (0.2-1), flip, RandAugment(n, m) on uint8 values."""
  x = random_resized_crop(tf.cast(image, tf.float32), size, area_range=(0.2, 1.0),
                          method="bilinear", antialias=True, sampler="torchvision")
  x = random_flip(quantize(x))
  return randaugment(x, n, m) / 255.0


def ava_eval_image(image, size):
  # The seed evaluates CIFAR at its own 32 px; other sizes are resized (identity at 32).
  x = tf.image.resize(to_float01(image), [size, size], method="bilinear", antialias=True)
  return normalize_cifar(tf.clip_by_value(tf.ensure_shape(x, [size, size, 3]), 0.0, 1.0))


register_eval_view("ava_eval_view",
                   lambda image, config: ava_eval_image(image, image_size(config, 32)))


@register("ava_views", views=3, eval_op="ava_eval_view")
def ava_views(data, config, is_training):
  size = image_size(config, 32)
  out = dict(data)
  if not is_training:
    out["image"] = ava_eval_image(data["image"], size)
    return out
  views = [ava_standard_view(data["image"], size), ava_standard_view(data["image"], size),
           ava_aux_view(data["image"], size, config.randaugment_n, config.randaugment_m)]
  out["image"] = normalize_cifar(tf.stack(views))
  return out
