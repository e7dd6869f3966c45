"""RandAugment as the AVA seed runs it (ildoonet's pytorch-randaugment list), PIL-exact.

On [0, 255] float images holding integer values, so every op keeps PIL's uint8 semantics; written
by hand over tf.image and raw TF ops because Keras's RandAugment has another op list, another
magnitude scale and no PIL rounding, and the seed's list is part of AVA's recipe.
"""

import math

import tensorflow as tf

from tfssl.data.randomness import coin, randint, uniform


def quantize(x):
  return tf.clip_by_value(tf.math.floor(x + 0.5), 0.0, 255.0)


def _random_sign(v):
  return tf.where(coin(0.5), -v, v)


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
  """PIL's autocontrast(cutoff=0): each channel's [min, max] stretched to [0, 255].

  Computed as PIL's lookup table is, in double precision: int(v * scale - lo * scale).
  float32's (v - lo) * scale lands on the other side of an integer for about a quarter of
  random images (one grey level off, measured against Pillow on 2,000 draws).
  """
  dtype = image.dtype
  pixels = tf.cast(image, tf.float64)
  lo = tf.reduce_min(pixels, axis=[0, 1], keepdims=True)
  hi = tf.reduce_max(pixels, axis=[0, 1], keepdims=True)
  scale = 255.0 / tf.maximum(hi - lo, 1.0)
  stretched = tf.clip_by_value(tf.math.floor(pixels * scale + (-lo * scale)), 0.0, 255.0)
  return tf.cast(tf.where(hi > lo, stretched, pixels), dtype)


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
  inner = quantize(inner + offset)
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
  x0 = tf.maximum(0.0, tf.math.floor(uniform(0.0, tf.cast(w, tf.float32)) - size / 2.0))
  y0 = tf.maximum(0.0, tf.math.floor(uniform(0.0, tf.cast(h, tf.float32)) - size / 2.0))
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
    index = randint(len(RANDAUGMENT_OPS))
    image = apply_randaugment_op(image, index, m)
  return image
