"""SwAV's multi-crop as a preprocessing op, and the crop layout the SwAV task reads.

  multi_crop  train: one key per crop size, `crops_<size>` [n, size, size, 3] in [0, 1], in the
              order of --size_crops (equal sizes share one key); no `image` key. Their
              photometric part is applied by view_colour.py (at the end of the chain, or
              from `crops_<size>_colour` in the train step with --augment_on_device)
              eval:  image [S0, S0, 3], S0 = the first --size_crops

`crop_groups(config)` is the one reading of --nmb_crops/--size_crops/--min_scale_crops/
--max_scale_crops: the op lays its crops out by it, and tasks/swav.py indexes --crops_for_assign by it.
"""

import tensorflow as tf

from tfssl.data.preprocess import register
from tfssl.data.view_colour import SUFFIX, draw_params, to_uint8
from tfssl.data.view_ops import eval_view, random_resized_crop, simclr_strengths, to_float01


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
  """(crop, its photometric parameters): torchvision's RandomResizedCrop (bilinear, antialiased),
  then flip, jitter p=0.8, grayscale p=0.2, blur p=0.5 (view_colour.py applies them)."""
  x = random_resized_crop(image, size, area_range=scale, min_object_covered=0.0,
                          method="bilinear", antialias=True)
  return to_uint8(x), draw_params(simclr_strengths(strength), p_blur=0.5 if blur else 0.0)


@register("multi_crop", views=lambda config: num_crops(config),
          eval_op="center_crop_resize (with --image_size = the first --size_crops)",
          deferred_colour=True)
def multi_crop(data, config, is_training):
  """SwAV's multi-crop: per group, crops of (min, max) area scale, flip, colour, blur p=0.5.

  Outputs stay in [0, 1] like SimCLR's, where SwAV normalises with the ImageNet mean/std; the op's
  eval mode gives the matching evaluation image.
  """
  out = {k: v for k, v in data.items() if k != "image"}
  groups = crop_groups(config)
  if not is_training:
    out["image"] = eval_view(data["image"], groups[0][1])
    return out
  image = data["image"]
  image = image if image.dtype == tf.uint8 else to_float01(image)  # crops scale uint8 to [0, 1]
  strength = float(config.color_jitter_strength)
  for key, size, parts in groups:
    blur = bool(config.use_blur) and size > 32
    crops, params = zip(*[swav_view(image, size, (low, high), strength, blur)
                          for count, low, high in parts for _ in range(count)])
    out[key], out[key + SUFFIX] = tf.stack(crops), tf.stack(params)
  return out
