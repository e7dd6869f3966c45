"""SwAV's multi-crop as a preprocessing op, and the crop layout the SwAV task reads.

  multi_crop  train: one key per crop size, `crops_<size>` [n, size, size, 3], in the order of
              --size_crops (equal sizes share one key); no `image` key. Their photometric
              part (PIL's forms) and SwAV's mean/std normalisation are applied by
              view_colour.py (at the end of the chain, or from `crops_<size>_colour_swav` in
              the train step with --augment_on_device)
              eval:  swav_eval_view's image at S0, the first --size_crops
  swav_eval_view  train and eval: SwAV's eval_linear.py view, [S, S, 3] normalised like the crops

`crop_groups(config)` is the one reading of --nmb_crops/--size_crops/--min_scale_crops/
--max_scale_crops: the op lays its crops out by it, and tasks/swav.py indexes --crops_for_assign by it.
"""

import tensorflow as tf

from tfssl.data.preprocess import register, register_eval_view
from tfssl.data.view_colour import (IMAGENET_MEAN, SWAV_STD, colour_key, draw_params, normalize,
                                    to_uint8)
from tfssl.data.view_ops import random_resized_crop, simclr_strengths, to_float01


def crop_groups(config):
  """[(key, size, count, min_scale, max_scale)] of --nmb_crops/--size_crops/..., grouped by size.

  Crops are numbered in this order (group by group), which is what --crops_for_assign indexes.
  Equal sizes share one key, as SwAV runs same-resolution crops through the network together.
  """
  lists = (config.nmb_crops_list, config.size_crops_list, config.min_scale_crops_list,
           config.max_scale_crops_list)
  if len({len(x or ()) for x in lists}) != 1:
    raise ValueError("--nmb_crops, --size_crops, --min_scale_crops and --max_scale_crops need the "
                     "same number of entries; got %s" % (lists,))
  groups = {}
  for count, size, low, high in zip(*lists):
    groups.setdefault(size, []).append((count, low, high))
  return [("crops_%d" % size, size, parts) for size, parts in groups.items()]


def num_crops(config):
  return sum(count for _, _, parts in crop_groups(config) for count, _, _ in parts)


def swav_view(image, size, scale, strength, blur):
  """(crop, its photometric parameters): torchvision's RandomResizedCrop (its sampler; bilinear,
  antialiased as PIL resizes), then flip, jitter p=0.8, grayscale p=0.2, blur p=0.5 with PIL's
  forms (view_colour.py applies them)."""
  x = random_resized_crop(image, size, area_range=scale, method="bilinear", antialias=True,
                          sampler="torchvision")
  return to_uint8(x), draw_params(simclr_strengths(strength), p_blur=0.5 if blur else 0.0)


def swav_eval_image(image, size):
  """SwAV's eval_linear.py view at `size`: the shorter side resized to 256/224 of it (bilinear,
  antialiased, as torchvision's Resize on a PIL image), the centre size x size, normalised with
  SwAV's mean/std. CIFAR-sized images (size <= 32) are only resized, as SimCLR's are."""
  x = to_float01(image)
  if size > 32:
    shape = tf.cast(tf.shape(x)[:2], tf.float64)
    short = int(size * 256 / 224)
    # torchvision's Resize(int): the shorter side to `short`, the longer one int(short * ratio).
    scale = short / tf.reduce_min(shape)
    resized = tf.where(shape == tf.reduce_min(shape), float(short), tf.floor(shape * scale))
    resized = tf.cast(resized, tf.int32)
    x = tf.image.resize(x, resized, method="bilinear", antialias=True)
    # CenterCrop: offsets int(round((side - size) / 2)), half to even as Python's round.
    top, left = tf.unstack(tf.cast(tf.round(tf.cast(resized - size, tf.float64) / 2.0), tf.int32))
    x = tf.slice(x, tf.stack([top, left, 0]), [size, size, -1])
  else:
    x = tf.image.resize(x, [size, size], method="bilinear", antialias=True)
  x = tf.ensure_shape(tf.clip_by_value(x, 0.0, 1.0), [size, size, 3])
  return normalize(x, IMAGENET_MEAN, SWAV_STD)


def _eval_size(config):
  return int(config.image_size or (config.size_crops_list or [224])[0])


register_eval_view("swav_eval_view",
                   lambda image, config: swav_eval_image(image, _eval_size(config)))


@register("multi_crop", views=lambda config: num_crops(config),
          eval_op="swav_eval_view (at the first --size_crops)", deferred_colour=True)
def multi_crop(data, config, is_training):
  """SwAV's multi-crop: per group, crops of (min, max) area scale, flip, colour, blur p=0.5, then
  SwAV's mean/std normalisation; the op's eval mode gives the matching evaluation image."""
  out = {k: v for k, v in data.items() if k != "image"}
  groups = crop_groups(config)
  if not is_training:
    out["image"] = swav_eval_image(data["image"], groups[0][1])
    return out
  image = data["image"]
  image = image if image.dtype == tf.uint8 else to_float01(image)  # crops scale uint8 to [0, 1]
  strength = float(config.color_jitter_strength)
  for key, size, parts in groups:
    blur = bool(config.use_blur) and size > 32
    crops, params = zip(*[swav_view(image, size, (low, high), strength, blur)
                          for count, low, high in parts for _ in range(count)])
    out[key], out[colour_key(key, "swav")] = tf.stack(crops), tf.stack(params)
  return out
