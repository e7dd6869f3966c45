"""The contrastive methods' view-making ops, registered in the preprocessing language.

Every op runs per example on `{"image": uint8 [H, W, 3], "label": ...}` inside tf.data, so each
view of each image draws its own random parameters.

  simclr_augment  train: image [2, S, S, 3] in [0, 1], two independent SimCLR views
                  eval:  image [S, S, 3] in [0, 1] (centre crop 0.875 for S > 32, else a resize)
  byol_augment    train: image [2, S, S, 3], BYOL's asymmetric pair (blur 1.0 / 0.1, solarize
                  0 / 0.2); eval as simclr_augment
  multi_crop      train: one key per crop size, `crops_<size>` [n, size, size, 3] in [0, 1], in
                  the order of --size_crops (equal sizes share one key); no `image` key
                  eval:  image [S0, S0, 3], S0 = the first --size_crops
  ava_views       train: image [3, S, S, 3] = (x, y, aux), normalised with the CIFAR mean/std
                  eval:  image [S, S, 3], resized if needed and normalised the same way
  center_crop_resize  train and eval: the deterministic eval view, [S, S, 3] in [0, 1] (the eval
                  image of simclr_augment, byol_augment and, at S = S0, multi_crop)
  ava_eval_view   train and eval: the eval image of ava_views

The first four make several views of an image in training (MULTI_VIEW_OPS): a chain holding one
cannot feed linear evaluation or fine-tuning, which train on one view; the last two are those chains' single-view
counterparts for linear evaluation and kNN (the contrastive configs' --knn_preprocessing).

S is --image_size (default 224 for simclr/byol, 32 for ava). The RandAugment of the AVA auxiliary
view is written here over tf.image and raw TF ops; see `RANDAUGMENT_OPS`.
"""

import math

import tensorflow as tf

from tfssl.data.preprocess import next_seed, register

# AVA_cifar's Normalize() constants (reference 1.4).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)

# SimCLR's eval crop keeps this fraction of the shorter side (data_util.CROP_PROPORTION).
CROP_PROPORTION = 0.875


MULTI_VIEW_OPS = ("simclr_augment", "byol_augment", "multi_crop", "ava_views")
SINGLE_VIEW_COUNTERPART = {"simclr_augment": "center_crop_resize", "byol_augment": "center_crop_resize",
                           "multi_crop": "center_crop_resize (with --image_size = the first --size_crops)",
                           "ava_views": "ava_eval_view"}


def check_single_view(chain, task):
  """ValueError naming the op and its single-view counterpart when `chain` makes several views."""
  for name in [op.strip() for op in (chain or "").split(",")]:
    if name in MULTI_VIEW_OPS:
      raise ValueError(
          "--preprocessing=%s: %s makes several augmented views of each image in training, and "
          "--task=%s trains on one view per image; use --preprocessing=%s" % (
              chain, name, task, SINGLE_VIEW_COUNTERPART[name]))


def _size(config, default):
  return int(config.image_size or default)


# Every random decision takes a stateless seed from the pipeline (preprocess.next_seed), so a
# fixed --random_seed repeats the same views.
def _uniform(low, high):
  return tf.random.stateless_uniform([], next_seed(), low, high, dtype=tf.float32)


def _coin(p):
  return tf.random.stateless_uniform([], next_seed()) < p


def _randint(n):
  return tf.random.stateless_uniform([], next_seed(), 0, n, dtype=tf.int32)


def _random_apply(fn, p, image):
  if p <= 0.0:
    return image
  if p >= 1.0:
    return fn(image)
  return tf.cond(_coin(p), lambda: fn(image), lambda: image)


def to_float01(image):
  return tf.image.convert_image_dtype(image, tf.float32)


# ---------------------------------------------------------------------------------------------
# Geometry

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


def center_crop(image, size, proportion=CROP_PROPORTION, method="bicubic"):
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
    out = center_crop(image, size)
  else:
    out = tf.image.resize(image, [size, size], method="bicubic")
    out.set_shape([size, size, 3])
  return tf.clip_by_value(out, 0.0, 1.0)


def random_flip(image):
  return tf.image.stateless_random_flip_left_right(image, next_seed())


# ---------------------------------------------------------------------------------------------
# Colour, on float images in [0, 1]

def color_jitter(image, brightness, contrast, saturation, hue, additive_brightness=False):
  """Brightness, contrast, saturation and hue in random order, clipped after each.

  Each factor is drawn from [max(0, 1 - s), 1 + s] (hue: a shift in [-h, h]) as SimCLR v2's
  `color_jitter_rand` and torchvision's ColorJitter. Brightness multiplies by such a factor, except
  with `additive_brightness`, where it adds a delta in [-b, b] (tf.image.random_brightness, as
  DeepMind's BYOL augmentations). tf.image's contrast blends with each channel's own mean where
  torchvision uses the grayscale mean: a small, documented difference.
  """
  def factor(s):
    return _uniform(max(0.0, 1.0 - s), 1.0 + s)

  def adjust_brightness(x):
    if additive_brightness:
      return x + _uniform(-brightness, brightness)
    return x * factor(brightness)

  branches = [
      lambda x: adjust_brightness(x) if brightness else x,
      lambda x: tf.image.adjust_contrast(x, factor(contrast)) if contrast else x,
      lambda x: tf.image.adjust_saturation(x, factor(saturation)) if saturation else x,
      lambda x: tf.image.adjust_hue(x, _uniform(-hue, hue)) if hue else x,
  ]
  order = tf.argsort(tf.random.stateless_uniform([4], next_seed()))
  for i in range(4):
    image = tf.switch_case(order[i], [lambda f=f: f(image) for f in branches])
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape([None, None, 3])
  return image


def to_grayscale(image):
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
  return _random_apply(lambda x: gaussian_blur(x, _uniform(0.1, 2.0), kernel), p, image)


def solarize01(image, threshold=0.5):
  return tf.where(image < threshold, image, 1.0 - image)


def color_distortion(image, strengths, p_jitter=0.8, p_gray=0.2, additive_brightness=False):
  image = _random_apply(lambda x: color_jitter(x, *strengths, additive_brightness=additive_brightness),
                        p_jitter, image)
  return _random_apply(to_grayscale, p_gray, image)


def simclr_strengths(s):
  """SimCLR's jitter for strength s: brightness, contrast, saturation 0.8 s; hue 0.2 s."""
  return (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)


# ---------------------------------------------------------------------------------------------
# The methods' views

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
  x = _random_apply(solarize01, solarize_p, x)
  return tf.clip_by_value(x, 0.0, 1.0)


@register("simclr_augment")
def simclr_augment(data, config, is_training):
  size = _size(config, 224)
  out = dict(data)
  if not is_training:
    out["image"] = eval_view(data["image"], size)
    return out
  blur = bool(config.use_blur) and size > 32
  strength = float(config.color_jitter_strength)
  out["image"] = tf.stack([simclr_view(data["image"], size, strength, blur) for _ in range(2)])
  return out


@register("byol_augment")
def byol_augment(data, config, is_training):
  """BYOL's pair: view 1 always blurred and never solarised, view 2 blurred 0.1, solarised 0.2.

  Blur follows SimCLR's rule (only for images > 32 px and with --use_blur); the seed's CIFAR code
  (reference 3) had neither blur nor solarisation and flipped with probability 0.25.
  """
  size = _size(config, 224)
  out = dict(data)
  if not is_training:
    out["image"] = eval_view(data["image"], size)
    return out
  blur = bool(config.use_blur) and size > 32
  strength = float(config.color_jitter_strength)
  views = [byol_view(data["image"], size, strength, 1.0 if blur else 0.0, 0.0),
           byol_view(data["image"], size, strength, 0.1 if blur else 0.0, 0.2)]
  out["image"] = tf.stack(views)
  return out


@register("center_crop_resize")
def center_crop_resize(data, config, is_training):
  del is_training  # deterministic in both modes: an eval view for kNN banks and probes
  out = dict(data)
  out["image"] = eval_view(data["image"], _size(config, 224))
  return out


# ---------------------------------------------------------------------------------------------
# SwAV multi-crop

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


def swav_view(image01, size, scale, strength, blur):
  x = random_resized_crop(image01, size, area_range=scale, min_object_covered=0.0,
                          method="bilinear", antialias=True)
  x = random_flip(tf.clip_by_value(x, 0.0, 1.0))
  x = color_distortion(x, simclr_strengths(strength))
  if blur:
    x = random_blur(x, size, 0.5)
  return tf.clip_by_value(x, 0.0, 1.0)


@register("multi_crop")
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
  image01 = to_float01(data["image"])
  strength = float(config.color_jitter_strength)
  for key, size, parts in groups:
    blur = bool(config.use_blur) and size > 32
    crops = [swav_view(image01, size, (low, high), strength, blur)
             for count, low, high in parts for _ in range(count)]
    out[key] = tf.stack(crops)
  return out


# ---------------------------------------------------------------------------------------------
# RandAugment as AVA's seed (ildoonet's pytorch-randaugment list), on [0, 255] float images
# holding integer values, so every op keeps PIL's uint8 semantics.

def _quantize(x):
  return tf.clip_by_value(tf.math.floor(x + 0.5), 0.0, 255.0)


def _random_sign(v):
  return tf.where(_coin(0.5), -v, v)


def _affine(image, a, b, c, d, e, f):
  """PIL's Image.transform(AFFINE, (a, b, c, d, e, f)), nearest neighbour, black outside.

  PIL samples output pixel (x, y) at input (a (x + .5) + b (y + .5) + c, ...) and truncates; the
  TF op maps integer pixel coordinates and rounds, hence the half-pixel shift of the offsets.
  """
  c = c + 0.5 * (a + b - 1.0)
  f = f + 0.5 * (d + e - 1.0)
  transform = tf.cast(tf.stack([a, b, c, d, e, f, 0.0, 0.0]), tf.float32)[None]
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image[None], transforms=transform, output_shape=tf.shape(image)[:2],
      fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")
  return out[0]


def _rotate(image, degrees):
  # PIL's rotate(): counter-clockwise about the image centre (w / 2, h / 2) in PIL's coordinates.
  a = -math.pi / 180.0 * _random_sign(degrees)
  cx = tf.cast(tf.shape(image)[1], tf.float32) / 2.0
  cy = tf.cast(tf.shape(image)[0], tf.float32) / 2.0
  cos, sin = tf.cos(a), tf.sin(a)
  return _affine(image, cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


def _shear_x(image, v):
  return _affine(image, 1.0, _random_sign(v), 0.0, 0.0, 1.0, 0.0)


def _shear_y(image, v):
  return _affine(image, 1.0, 0.0, 0.0, _random_sign(v), 1.0, 0.0)


def _translate_x(image, pixels):
  return _affine(image, 1.0, 0.0, _random_sign(pixels), 0.0, 1.0, 0.0)


def _translate_y(image, pixels):
  return _affine(image, 1.0, 0.0, 0.0, 0.0, 1.0, _random_sign(pixels))


def _autocontrast(image):
  """PIL's autocontrast(cutoff=0): each channel's [min, max] stretched to [0, 255]."""
  lo = tf.reduce_min(image, axis=[0, 1], keepdims=True)
  hi = tf.reduce_max(image, axis=[0, 1], keepdims=True)
  scale = 255.0 / tf.maximum(hi - lo, 1.0)
  stretched = tf.clip_by_value(tf.math.floor((image - lo) * scale), 0.0, 255.0)
  return tf.where(hi > lo, stretched, image)


def _equalize_channel(channel):
  """PIL's ImageOps.equalize for one channel: a LUT from the cumulative histogram."""
  values = tf.cast(channel, tf.int32)
  hist = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
  last_nonzero = tf.gather(hist, tf.reduce_max(tf.where(hist > 0)))
  step = (tf.reduce_sum(hist) - tf.cast(tf.reshape(last_nonzero, []), tf.int32)) // 255
  safe_step = tf.maximum(step, 1)
  lut = (safe_step // 2 + tf.cumsum(hist, exclusive=True)) // safe_step
  lut = tf.clip_by_value(lut, 0, 255)
  equalized = tf.cast(tf.gather(lut, values), tf.float32)
  return tf.where(step > 0, equalized, channel)


def _equalize(image):
  return tf.stack([_equalize_channel(image[..., c]) for c in range(3)], axis=-1)


def _posterize(image, bits):
  shift = 8 - tf.maximum(1, tf.cast(bits, tf.int32))
  kept = tf.bitwise.left_shift(tf.bitwise.right_shift(tf.cast(image, tf.int32), shift), shift)
  return tf.cast(kept, tf.float32)


def _solarize(image, threshold):
  return tf.where(image < threshold, image, 255.0 - image)


def _solarize_add(image, addition):
  # ildoonet's SolarizeAdd: add to every pixel (truncated to uint8), then solarize at 128.
  return _solarize(tf.math.floor(tf.clip_by_value(image + addition, 0.0, 255.0)), 128.0)


def _grayscale_mean(image):
  # PIL's convert("L") (ITU-R 601-2 luma), then the rounded mean, as ImageEnhance.Contrast.
  luma = tf.math.floor(image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114 + 0.5)
  return tf.math.floor(tf.reduce_mean(luma) + 0.5)


def _blend(degenerate, image, factor):
  # PIL's Image.blend truncates to uint8.
  return tf.math.floor(tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0))


def _contrast(image, factor):
  return _blend(_grayscale_mean(image), image, factor)


def _pil_filter(image, kernel, scale, offset):
  """PIL's ImageFilter.Kernel on each channel: sum(kernel * window) / scale + offset, rounded and
  clipped, with the outer `radius` pixels copied from the input as PIL does."""
  k = tf.constant(kernel, tf.float32)
  size = k.shape[0]
  r = size // 2
  filt = tf.tile(tf.reshape(k / scale, [size, size, 1, 1]), [1, 1, 3, 1])
  inner = tf.nn.depthwise_conv2d(image[None], filt, [1, 1, 1, 1], "VALID")[0]
  inner = _quantize(inner + offset)
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  pad = [[r, r], [r, r], [0, 0]]
  interior = tf.pad(tf.ones([h - 2 * r, w - 2 * r, 3]), pad)
  return interior * tf.pad(inner, pad) + (1.0 - interior) * image


# PIL's kernels, rows flipped: PIL convolves with its listed kernel upside down, depthwise_conv2d
# correlates, so EMBOSS's -1 (listed top-left) acts on the bottom-left neighbour. The others are
# symmetric.
_SMOOTH = [[1, 1, 1], [1, 5, 1], [1, 1, 1]]
_BLUR = [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]]
_EDGES = [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]
_EMBOSS = [[0, 0, 0], [0, 1, 0], [-1, 0, 0]]


def _sharpness(image, factor):
  # ImageEnhance.Sharpness blends with the SMOOTH-filtered image.
  return _blend(_pil_filter(image, _SMOOTH, 13.0, 0.0), image, factor)


def _cutout(image, size):
  """ildoonet's CutoutAbs: a size x size square of grey (125, 123, 114) at a random centre."""
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  x0 = tf.maximum(0.0, tf.math.floor(_uniform(0.0, tf.cast(w, tf.float32)) - size / 2.0))
  y0 = tf.maximum(0.0, tf.math.floor(_uniform(0.0, tf.cast(h, tf.float32)) - size / 2.0))
  xs = tf.cast(tf.range(w), tf.float32)
  ys = tf.cast(tf.range(h), tf.float32)
  # PIL's rectangle() includes its far edge.
  inside_x = (xs >= x0) & (xs <= x0 + size)
  inside_y = (ys >= y0) & (ys <= y0 + size)
  mask = tf.cast(inside_y[:, None] & inside_x[None, :], tf.float32)[..., None]
  grey = tf.constant([125.0, 123.0, 114.0])
  return mask * grey + (1.0 - mask) * image


# (name, fn(image, value), min, max): the seed's 18 ops; value = m / 30 * (max - min) + min.
# Color and Brightness are commented out in the seed and so absent here too.
RANDAUGMENT_OPS = (
    ("AutoContrast", lambda x, v: _autocontrast(x), 0, 1),
    ("Equalize", lambda x, v: _equalize(x), 0, 1),
    ("Invert", lambda x, v: 255.0 - x, 0, 1),
    ("Rotate", _rotate, 0, 30),
    ("Posterize", _posterize, 0, 4),
    ("Solarize", _solarize, 0, 256),
    ("SolarizeAdd", _solarize_add, 0, 110),
    ("Contrast", _contrast, 0.1, 1.9),
    ("Sharpness", _sharpness, 0.1, 1.9),
    ("ShearX", _shear_x, 0.0, 0.3),
    ("ShearY", _shear_y, 0.0, 0.3),
    ("CutoutAbs", _cutout, 0, 40),
    ("TranslateXabs", _translate_x, 0.0, 100),
    ("TranslateYabs", _translate_y, 0.0, 100),
    ("BLUR", lambda x, v: _pil_filter(x, _BLUR, 16.0, 0.0), 0, 1),
    ("CONTOUR", lambda x, v: _pil_filter(x, _EDGES, 1.0, 255.0), 0, 1),
    ("EMBOSS", lambda x, v: _pil_filter(x, _EMBOSS, 1.0, 128.0), 0, 1),
    ("FIND_EDGES", lambda x, v: _pil_filter(x, _EDGES, 1.0, 0.0), 0, 1),
)


def randaugment_value(m, low, high):
  return float(m) / 30.0 * float(high - low) + low


def apply_randaugment_op(image, index, m):
  """Op number `index` of RANDAUGMENT_OPS at magnitude m (a tensor index picks the branch)."""
  branches = []
  for _, fn, low, high in RANDAUGMENT_OPS:
    value = randaugment_value(m, low, high)
    branches.append(lambda fn=fn, value=value: tf.ensure_shape(fn(image, value), image.shape))
  return tf.switch_case(tf.cast(index, tf.int32), branches)


def randaugment(image, n, m):
  """n ops drawn uniformly with replacement, each applied at magnitude m (of 30), no gate."""
  for _ in range(int(n)):
    index = _randint(len(RANDAUGMENT_OPS))
    image = apply_randaugment_op(image, index, m)
  return image


# ---------------------------------------------------------------------------------------------
# AVA (AAG) views

def normalize_cifar(image01):
  return (image01 - tf.constant(CIFAR_MEAN)) / tf.constant(CIFAR_STD)


def ava_standard_view(image, size):
  """Crop (0.2-1), colour adjust 0.4 always (hue 0.4 too; random order), grayscale p=0.2, flip."""
  x = random_resized_crop(to_float01(image), size, area_range=(0.2, 1.0), min_object_covered=0.0,
                          method="bilinear", antialias=True)
  x = color_jitter(tf.clip_by_value(x, 0.0, 1.0), 0.4, 0.4, 0.4, 0.4)
  x = _random_apply(to_grayscale, 0.2, x)
  return random_flip(x)


def ava_aux_view(image, size, n, m):
  """Crop (0.2-1), flip, RandAugment(n, m) on uint8 values."""
  x = random_resized_crop(tf.cast(image, tf.float32), size, area_range=(0.2, 1.0),
                          min_object_covered=0.0, method="bilinear", antialias=True)
  x = random_flip(_quantize(x))
  return randaugment(x, n, m) / 255.0


def ava_eval_image(image, size):
  # The seed evaluates CIFAR at its own 32 px; other sizes are resized (identity at 32).
  x = tf.image.resize(to_float01(image), [size, size], method="bilinear", antialias=True)
  return normalize_cifar(tf.clip_by_value(tf.ensure_shape(x, [size, size, 3]), 0.0, 1.0))


@register("ava_eval_view")
def ava_eval_view(data, config, is_training):
  del is_training  # deterministic in both modes, like center_crop_resize
  out = dict(data)
  out["image"] = ava_eval_image(data["image"], _size(config, 32))
  return out


@register("ava_views")
def ava_views(data, config, is_training):
  size = _size(config, 32)
  out = dict(data)
  if not is_training:
    out["image"] = ava_eval_image(data["image"], size)
    return out
  views = [ava_standard_view(data["image"], size), ava_standard_view(data["image"], size),
           ava_aux_view(data["image"], size, config.randaugment_n, config.randaugment_m)]
  out["image"] = normalize_cifar(tf.stack(views))
  return out
