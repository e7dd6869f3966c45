"""A view's photometric augmentation as data: drawn per view, applied per view or per batch.

SimCLR's, BYOL's and SwAV's views are a geometric part (random crop, resize) and a photometric
part (flip, colour jitter in random order, grayscale, Gaussian blur, solarisation). The view op
draws the photometric part's random parameters per view from the example's stateless seed
(`draw_params`: a vector of NUM_PARAMS scalars, cheap) and stores them beside the views under
`<key>_colour` (or `<key>_colour_<style>`: STYLES, whose forms and normalisation the original
used). `finish_views` then applies them in one of two places:

  - at the end of the example's chain, view by view (the default; select="per_view": tf.image's
    fused kernels behind a tf.cond per decision, so what does not apply costs nothing);
  - inside the train step on the replica's whole batch (--augment_on_device; select="mask":
    closed forms with one factor per image, static shapes for XLA): the host only decodes, crops
    and resizes, and the accelerator does the per-pixel work.

Both read the same parameters and give the same pixels (to float rounding; tested), so the two
places train on the same distribution, and the same seed gives the same batch.

Written by hand because tf.image's adjust_hue / adjust_saturation take one factor per call and its
depthwise-convolution blur runs at ~20 ms per 224-pixel image on a CPU core: per-example factors
across a batch need closed forms (HSV saturation scaling and hue rotation, equal to tf.image's to
~1e-6), and the blur here is block-banded matrix products (zero padding, SimCLR's 'SAME' depthwise
convolution, the same kernel), several times faster on a CPU (docs/RESULTS.md). `select="gather"`
(batched, each jitter op only on the views that take it) is the batched form for dynamic shapes.
"""

import collections

import tensorflow as tf

from tfssl.data import pil_colour
from tfssl.data.randomness import next_seed, uniform

FIELDS = ("flip", "jitter", "order0", "order1", "order2", "order3", "brightness_scale",
          "brightness_shift", "contrast", "saturation", "hue", "gray", "blur_sigma", "solarize")
NUM_PARAMS = len(FIELDS)
_INDEX = {name: i for i, name in enumerate(FIELDS)}
SUFFIX = "_colour"
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # the jitter ops, as the order fields name them
FORMS = ("tf", "pil")  # whose contrast, saturation and blur: tf.image's/SimCLR's, or PIL's

# ImageNet's mean and std: DeepMind's BYOL normalises with them, SwAV with its own first std
# (0.228, in multicropdataset.py and eval_linear.py).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SWAV_STD = (0.228, 0.224, 0.225)

# How an original finishes its views, named by the end of the parameters' key: `<key>_colour`
# (SimCLR: tf.image's forms, [0, 1] out), `<key>_colour_byol` (the same, then ImageNet's
# mean/std), `<key>_colour_swav` (PIL's forms, then SwAV's mean/std). The name travels with
# the views, so both places that apply the colour (the chain's end, the train step) finish them
# alike without knowing the op.
Style = collections.namedtuple("Style", "form mean std")
STYLES = {"": Style("tf", None, None), "byol": Style("tf", IMAGENET_MEAN, IMAGENET_STD),
          "swav": Style("pil", IMAGENET_MEAN, SWAV_STD)}


def colour_key(key, style=""):
  """The key a view op stores `key`'s photometric parameters under, for a STYLES name."""
  if style not in STYLES:
    raise ValueError("unknown view style %r: use one of %s" % (style, sorted(STYLES)))
  return key + SUFFIX + ("_" + style if style else "")


def normalize(images, mean, std):
  """(images - mean) / std per channel, or the images as they are when mean is None."""
  if mean is None:
    return images
  return (images - tf.constant(mean, images.dtype)) / tf.constant(std, images.dtype)


def to_uint8(views01):
  """Crops in [0, 1] rounded to 8 bits, the form views travel in until their colour is applied:
  a quarter of float32's bytes through the pipeline's batching and the copy to the accelerator
  (multi_crop's host rate rose by a third with it; docs/RESULTS.md), and what a photo's crop is in
  torchvision's PIL pipelines. Both places that apply the colour start from these same values."""
  return tf.cast(tf.round(tf.clip_by_value(views01, 0.0, 1.0) * 255.0), tf.uint8)


def _to_float01(images):
  x = tf.cast(images, tf.float32)
  return x / 255.0 if images.dtype == tf.uint8 else x


def blur_kernel_size(size):
  """SimCLR's blur kernel for size-pixel views: a tenth of the size, made odd (at least 3)."""
  return max(3, size // 10 // 2 * 2 + 1)


# ---- drawing, per view, inside the chain ----
def _decide(probability):
  """1.0 with the given probability, else 0.0; 0 and 1 draw nothing (as apply_with_probability)."""
  if probability <= 0.0:
    return tf.constant(0.0)
  if probability >= 1.0:
    return tf.constant(1.0)
  return tf.cast(tf.random.stateless_uniform([], next_seed()) < probability, tf.float32)


def _factor(strength):
  """A jitter factor from [max(0, 1 - s), 1 + s], or 1 (no change) at strength 0."""
  if not strength:
    return tf.constant(1.0)
  return uniform(max(0.0, 1.0 - strength), 1.0 + strength)


def draw_params(strengths, p_jitter=0.8, p_gray=0.2, p_blur=0.0, p_solarize=0.0,
                additive_brightness=False, flip=True):
  """One view's photometric parameters, [NUM_PARAMS] float32, from the chain's seeds.

  strengths: (brightness, contrast, saturation, hue) as SimCLR v2's `color_jitter_rand` and
  torchvision's ColorJitter: factors from [max(0, 1 - s), 1 + s], a hue shift from [-h, h];
  brightness multiplies by its factor, or with `additive_brightness` adds a delta from [-b, b]
  (DeepMind's BYOL, tf.image.random_brightness). The four are applied in a random order, drawn
  here. Blur: sigma ~ U(0.1, 2.0) with probability p_blur (0 = not blurred), drawn per view
  (SimCLR's TF code draws one sigma per batch slot: a negligible difference). Which contrast,
  saturation and blur these factors drive, tf.image's or PIL's, is the applying side's `form`.
  """
  brightness, contrast, saturation, hue = strengths
  values = {"flip": _decide(0.5) if flip else tf.constant(0.0), "jitter": _decide(p_jitter)}
  order = tf.cast(tf.argsort(tf.random.stateless_uniform([4], next_seed())), tf.float32)
  for i in range(4):
    values["order%d" % i] = order[i]
  if additive_brightness:
    values["brightness_scale"] = tf.constant(1.0)
    values["brightness_shift"] = (uniform(-brightness, brightness) if brightness
                                  else tf.constant(0.0))
  else:
    values["brightness_scale"], values["brightness_shift"] = _factor(brightness), tf.constant(0.0)
  values["contrast"] = _factor(contrast)
  values["saturation"] = _factor(saturation)
  values["hue"] = uniform(-hue, hue) if hue else tf.constant(0.0)
  values["gray"] = _decide(p_gray)
  blurred = _decide(p_blur)
  values["blur_sigma"] = blurred * uniform(0.1, 2.0) if p_blur > 0.0 else tf.constant(0.0)
  values["solarize"] = _decide(p_solarize)
  return tf.stack([tf.cast(values[name], tf.float32) for name in FIELDS])


# ---- the per-pixel ops on [N, H, W, 3] with one parameter per image ----
def _per_image(values):
  return tf.reshape(values, [-1, 1, 1, 1])


def adjust_contrast(images, factors):
  """tf.image.adjust_contrast per image: each channel blended with its own mean (PIL's form is
  pil_colour.adjust_contrast)."""
  means = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
  return (images - means) * _per_image(factors) + means


def adjust_saturation(images, factors):
  """tf.image.adjust_saturation per image, in closed form: HSV's S scaled and clipped to [0, 1]
  with V (the max channel) and H kept moves every channel towards or away from the max."""
  top = tf.reduce_max(images, axis=-1, keepdims=True)
  bottom = tf.reduce_min(images, axis=-1, keepdims=True)
  # S = (max - min) / max; scaling it by f past 1 clips at S = 1, i.e. a factor of max / (max - min)
  limit = tf.math.divide_no_nan(top, top - bottom)
  scale = tf.minimum(_per_image(factors), tf.where(top > bottom, limit, tf.ones_like(limit)))
  return top - scale * (top - images)


def adjust_hue(images, deltas):
  """tf.image.adjust_hue per image, in closed form: the HSV hue rotated by delta (in turns)."""
  top = tf.reduce_max(images, axis=-1, keepdims=True)
  chroma = top - tf.reduce_min(images, axis=-1, keepdims=True)
  red, green, blue = tf.split(images, 3, axis=-1)
  safe = tf.where(chroma > 0, chroma, tf.ones_like(chroma))
  hue = tf.where(top == red, (green - blue) / safe,
                 tf.where(top == green, (blue - red) / safe + 2.0, (red - green) / safe + 4.0))
  hue = tf.where(chroma > 0, hue, tf.zeros_like(hue))
  hue = tf.math.floormod(hue + 6.0 * _per_image(deltas), 6.0)
  # The standard HSV -> RGB: channel n of (5, 3, 1) is V - C * clip(min(k, 4 - k), 0, 1).
  k = tf.math.floormod(tf.constant([5.0, 3.0, 1.0]) + hue, 6.0)
  return top - chroma * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0)


def luma(images):
  """ITU-R 601 luma (tf.image.rgb_to_grayscale) in 3 channels: SimCLR's and torchvision's gray."""
  return tf.tile(tf.image.rgb_to_grayscale(images), [1, 1, 1, 3])


# Rows of output the blur computes per matrix product: each block reads its rows and `radius` more
# on either side, so a 224-pixel view costs 7 products of [32, 54] instead of one [224, 224].
BLUR_BLOCK = 32


def blur_block_matrices(sigmas, kernel_size, block=BLUR_BLOCK):
  """[N, block, block + 2 * radius]: for each sigma, row i holds the normalised Gaussian taps at
  columns i .. i + 2 * radius, so multiplying a block's padded rows by it is the 1-D convolution."""
  radius = kernel_size // 2
  sigmas = tf.reshape(tf.maximum(tf.cast(sigmas, tf.float32), 1e-3), [-1, 1])
  taps = tf.cast(tf.range(-radius, radius + 1), tf.float32)
  weights = tf.exp(-tf.square(taps) / (2.0 * tf.square(sigmas)))           # [N, k]
  weights /= tf.reduce_sum(weights, -1, keepdims=True)
  offsets = tf.range(block + 2 * radius)[None, :] - tf.range(block)[:, None]  # [block, block+2r]
  inside = (offsets >= 0) & (offsets <= 2 * radius)
  picked = tf.gather(weights, tf.clip_by_value(offsets, 0, 2 * radius), axis=1)
  return tf.where(inside[None], picked, 0.0)


def _blur_rows(x, matrices, radius, block):
  """The 1-D blur of x [N, S, D] along S ('SAME' zero padding), block by block."""
  size = x.shape[1]
  blocks = -(-size // block)
  padded = tf.pad(x, [[0, 0], [radius, radius + blocks * block - size], [0, 0]])
  frames = tf.signal.frame(padded, block + 2 * radius, block, axis=1)  # [N, B, block + 2r, D]
  out = tf.matmul(matrices[:, None], frames)                            # [N, B, block, D]
  return tf.reshape(out, [tf.shape(x)[0], blocks * block, x.shape[2]])[:, :size]


def gaussian_blur(images, sigmas, kernel_size, block=BLUR_BLOCK):
  """The separable Gaussian blur of square images [N, S, S, C], one sigma per image: zero
  padding, SimCLR's kernel (its 'SAME' depthwise convolution, to float rounding)."""
  n, size, channels = tf.shape(images)[0], images.shape[1], images.shape[-1]
  radius = kernel_size // 2
  matrices = blur_block_matrices(sigmas, kernel_size, min(block, size))
  x = _blur_rows(tf.reshape(images, [n, size, size * channels]), matrices, radius, min(block, size))
  x = tf.transpose(tf.reshape(x, [n, size, size, channels]), [0, 2, 1, 3])
  x = _blur_rows(tf.reshape(x, [n, size, size * channels]), matrices, radius, min(block, size))
  return tf.transpose(tf.reshape(x, [n, size, size, channels]), [0, 2, 1, 3])


# ---- applying a batch's parameters ----
def _jitter_op(op, images, params, form):
  column = lambda name: params[:, _INDEX[name]]  # noqa: E731
  if op == BRIGHTNESS:
    return images * _per_image(column("brightness_scale")) + _per_image(column("brightness_shift"))
  if op == CONTRAST:
    contrast = pil_colour.adjust_contrast if form == "pil" else adjust_contrast
    return contrast(images, column("contrast"))
  if op == SATURATION:
    saturation = pil_colour.adjust_saturation if form == "pil" else adjust_saturation
    return saturation(images, column("saturation"))
  return adjust_hue(images, column("hue"))


def _blur(images, sigmas, form):
  if form == "pil":
    return pil_colour.gaussian_blur(images, sigmas)
  return gaussian_blur(images, sigmas, blur_kernel_size(images.shape[1]))


def _where_images(condition, yes, no):
  return tf.where(_per_image(condition), yes, no)


def _apply_to(selected, fn, images, params, select):
  """fn(images, params) on the images where `selected`; the others unchanged."""
  if select == "mask":
    return _where_images(selected, fn(images, params), images)
  index = tf.where(selected)
  changed = fn(tf.gather_nd(images, index), tf.gather_nd(params, index))
  return tf.tensor_scatter_nd_update(images, index, changed)


def apply_params(images, params, select="gather", form="tf"):
  """images [N, S, S, 3] after the crop (uint8, or float in [0, 1]), params [N, NUM_PARAMS] ->
  the finished float views in [0, 1]: flip, jitter (p, random order, clipped after each op),
  grayscale, blur, solarise, clipped. `form` (FORMS): tf.image's contrast and saturation and
  SimCLR's blur, or PIL's (pil_colour.py)."""
  if form not in FORMS:
    raise ValueError("form must be one of %s, got %r" % (FORMS, form))
  if select == "per_view":
    return tf.stack([_finish_one(images[i], params[i], form) for i in range(images.shape[0])])
  if select not in ("gather", "mask"):
    raise ValueError("select must be 'per_view', 'gather' or 'mask', got %r" % (select,))
  params = tf.cast(params, tf.float32)
  column = lambda name: params[:, _INDEX[name]]  # noqa: E731
  x = _to_float01(images)
  x = _where_images(column("flip") > 0.5, tf.reverse(x, [2]), x)
  jittered = column("jitter") > 0.5
  for round_ in range(4):
    op_of_round = column("order%d" % round_)
    for op in range(4):
      chosen = tf.logical_and(jittered, tf.equal(op_of_round, float(op)))
      x = _apply_to(chosen, lambda v, p, op=op: tf.clip_by_value(_jitter_op(op, v, p, form), 0.0,
                                                                 1.0), x, params, select)
  x = _where_images(column("gray") > 0.5, luma(x), x)
  size = images.shape[1]
  if size is not None and size > 0:
    x = _apply_to(column("blur_sigma") > 0.0,
                  lambda v, p: _blur(v, p[:, _INDEX["blur_sigma"]], form), x, params, select)
  x = _where_images(column("solarize") > 0.5, tf.where(x < 0.5, x, 1.0 - x), x)
  return tf.clip_by_value(x, 0.0, 1.0)


def _finish_one(image, params, form="tf"):
  """apply_params for one view [S, S, 3] with tf.image's fused kernels (one factor per call),
  each decision a tf.cond and the jitter round a switch_case, so what does not apply costs
  nothing: on a CPU, per view in the input pipeline, this beats the batched closed forms (whole-
  batch elementwise ops on [N, S, S, 3] run out of cache; docs/RESULTS.md)."""
  p = {name: params[_INDEX[name]] for name in FIELDS}
  when = lambda flag, fn, x: tf.cond(flag, lambda: fn(x), lambda: x)  # noqa: E731
  x = when(p["flip"] > 0.5, lambda v: tf.reverse(v, [1]), _to_float01(image))
  one = lambda fn, v, factor: fn(v[None], factor[None])[0]  # noqa: E731
  if form == "pil":
    contrast = lambda v: one(pil_colour.adjust_contrast, v, p["contrast"])  # noqa: E731
    saturation = lambda v: one(pil_colour.adjust_saturation, v, p["saturation"])  # noqa: E731
  else:
    contrast = lambda v: tf.image.adjust_contrast(v, p["contrast"])  # noqa: E731
    saturation = lambda v: tf.image.adjust_saturation(v, p["saturation"])  # noqa: E731
  ops = [lambda v: v * p["brightness_scale"] + p["brightness_shift"], contrast, saturation,
         lambda v: tf.image.adjust_hue(v, p["hue"])]

  def jitter(v):
    for round_ in range(4):
      op = tf.cast(p["order%d" % round_], tf.int32)
      v = tf.clip_by_value(tf.switch_case(op, [lambda f=f: f(v) for f in ops]), 0.0, 1.0)
      v.set_shape(image.shape)
    return v

  x = when(p["jitter"] > 0.5, jitter, x)
  x = when(p["gray"] > 0.5, lambda v: luma(v[None])[0], x)
  x = when(p["blur_sigma"] > 0.0, lambda v: _blur(v[None], p["blur_sigma"][None], form)[0], x)
  x = when(p["solarize"] > 0.5, lambda v: tf.where(v < 0.5, v, 1.0 - v), x)
  return tf.clip_by_value(x, 0.0, 1.0)


def _deferred(data):
  """{image key: (its parameters' key, Style)} of `data`'s views whose colour is still to apply."""
  found = {}
  for style in STYLES:
    for k in data:
      name = colour_key("", style)
      if k.endswith(name) and k[:-len(name)] in data:
        found[k[:-len(name)]] = (k, STYLES[style])
  return found


def deferred_keys(data):
  """The image keys of `data` whose colour is still to be applied (a `<key>_colour...` beside)."""
  return sorted(_deferred(data))


def is_colour_key(key):
  return any(key.endswith(colour_key("", style)) for style in STYLES)


def finish_views(data, select="per_view"):
  """Applies every `<key>_colour` of a dict to its `<key>` views and drops the parameters.

  Views may be [V, S, S, 3] (one example) or [B, V, S, S, 3] (a batch; "per_view" needs a known
  B); a dict with nothing deferred is returned as it is.
  """
  deferred = _deferred(data)
  if not deferred:
    return data
  done_keys = {k for k, _ in deferred.values()}
  out = {k: v for k, v in data.items() if k not in done_keys}
  for key, (params_key, style) in sorted(deferred.items()):
    views, params = data[key], data[params_key]
    shape = tf.shape(views)
    flat = tf.reshape(views, tf.concat([[-1], shape[-3:]], 0))
    flat.set_shape([None] + views.shape[-3:].as_list())
    done = apply_params(flat, tf.reshape(params, [-1, NUM_PARAMS]), select, style.form)
    out[key] = tf.reshape(normalize(done, style.mean, style.std), shape)
  return out
