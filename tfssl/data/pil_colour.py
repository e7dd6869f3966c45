"""PIL's forms of contrast, saturation and Gaussian blur, batched, for the torchvision-based views.

SwAV's and AVA's originals jitter PIL images (torchvision's ColorJitter, SwAV's
PILRandomGaussianBlur), and three of PIL's ops are not tf.image's (view_colour.py has those, for
SimCLR and BYOL, whose originals are TensorFlow):

  contrast    ImageEnhance.Contrast blends every channel with one value, the mean of the image's
              grayscale ("L") form rounded to a level; tf.image blends each channel with its own
              mean.
  saturation  ImageEnhance.Color blends with the grayscale image; tf.image scales HSV's S.
  blur        ImageFilter.GaussianBlur(radius) is three passes of an extended box blur per axis
              (Pillow's BoxBlur.c: the box radius that gives the Gaussian's variance, fractional
              end taps, edge pixels repeated, each pass rounded to 8 bits); SimCLR's is a
              truncated Gaussian kernel over zero padding.

Each takes float images [N, H, W, 3] in [0, 1] and one factor or sigma per image, and follows
PIL's arithmetic where it decides a level (the grayscale's and the mean's rounding, the blur's
fixed-point weights and per-pass rounding); blends are not truncated to 8 bits as PIL's are, so on
8-bit inputs the results are within one level of PIL's (tests/test_view_originals.py). Written by
hand because no maintained TensorFlow library has PIL's forms with per-image factors.
"""

import math

import tensorflow as tf

# Pillow's RGB -> L weights (Convert.c: L24, 16-bit fixed point, rounded half up).
_L_WEIGHTS = (19595 / 65536, 38470 / 65536, 7471 / 65536)
BLUR_PASSES = 3  # ImageFilter.GaussianBlur's, in Pillow 10 to 13
MAX_SIGMA = 2.0  # SwAV's PILRandomGaussianBlur radius_max; the taps below reach this far
ONE = 1 << 24  # BoxBlur.c's fixed point


def _per_image(values):
  return tf.reshape(tf.cast(values, tf.float32), [-1, 1, 1, 1])


def _levels(images01):
  return images01 * 255.0


def grayscale_levels(images01):
  """PIL's convert("L") of [N, H, W, 3] in [0, 1]: [N, H, W, 1] in levels 0..255, rounded."""
  levels = tf.reduce_sum(_levels(images01) * tf.constant(_L_WEIGHTS), axis=-1, keepdims=True)
  return tf.floor(levels + 0.5)


def adjust_contrast(images01, factors):
  """ImageEnhance.Contrast(image).enhance(f), per image: blend with the rounded grayscale mean."""
  mean = tf.floor(tf.reduce_mean(grayscale_levels(images01), axis=[1, 2, 3], keepdims=True) + 0.5)
  return tf.clip_by_value(mean / 255.0 + _per_image(factors) * (images01 - mean / 255.0), 0.0, 1.0)


def adjust_saturation(images01, factors):
  """ImageEnhance.Color(image).enhance(f), per image: blend with the grayscale image."""
  gray = grayscale_levels(images01) / 255.0
  return tf.clip_by_value(gray + _per_image(factors) * (images01 - gray), 0.0, 1.0)


def box_radius(sigmas, passes=BLUR_PASSES):
  """Pillow's _gaussian_blur_radius: the (fractional) box radius whose `passes` repetitions have
  the variance sigma^2 (Gwosdek et al. 2011, the formula BoxBlur.c cites)."""
  sigma2 = tf.square(tf.cast(sigmas, tf.float32)) / passes
  length = tf.sqrt(12.0 * sigma2 + 1.0)
  inner = tf.floor((length - 1.0) / 2.0)
  fraction = (2 * inner + 1) * (inner * (inner + 1) - 3 * sigma2)
  fraction /= 6 * (sigma2 - tf.square(inner + 1))
  return inner + fraction


def _reach(max_sigma, passes=BLUR_PASSES):
  """How many taps either side the widest box (sigma = max_sigma) needs: floor(radius) + 1
  (box_radius's formula in Python: the reach is static, known before any graph is built)."""
  sigma2 = max_sigma * max_sigma / passes
  inner = math.floor((math.sqrt(12.0 * sigma2 + 1.0) - 1.0) / 2.0)
  fraction = (2 * inner + 1) * (inner * (inner + 1) - 3 * sigma2) / (6 * (sigma2 - (inner + 1) ** 2))
  return int(math.floor(inner + fraction)) + 1


def box_taps(sigmas, reach):
  """[N, 2 reach + 1] integer weights (float64) of one pass, in Pillow's 24-bit fixed point: ww
  on the floor(R) taps either side (2^24 / (2R + 1) in float32, truncated, as BoxBlur.c's C
  arithmetic gives it), fw = (2^24 - (2r + 1) ww) // 2 on the next one out, zero beyond."""
  radius = box_radius(sigmas)[:, None]
  whole = tf.floor(radius)
  ww = tf.floor(float(ONE) / (2.0 * radius + 1.0))
  fw = tf.floor((float(ONE) - (2.0 * whole + 1.0) * ww) / 2.0)
  distance = tf.abs(tf.cast(tf.range(-reach, reach + 1), tf.float32))[None, :]
  taps = tf.where(distance <= whole, ww, tf.where(distance == whole + 1.0, fw, 0.0))
  return tf.cast(taps, tf.float64)


def _box_pass(levels, taps, reach, axis):
  """One pass along `axis` (1 rows, 2 columns) of [N, H, W, C] levels (float64 integers), edges
  repeated, rounded as BoxBlur.c's SAVE: (sum + 2^23) >> 24. float64 holds the fixed-point sums
  exactly; float32's rounding moved about one output in twenty by a level."""
  length = tf.shape(levels)[axis]
  index = tf.clip_by_value(tf.range(-reach, length + reach), 0, length - 1)
  padded = tf.gather(levels, index, axis=axis)
  out = tf.zeros_like(levels)
  for k in range(2 * reach + 1):
    window = padded[:, k:k + length] if axis == 1 else padded[:, :, k:k + length]
    out += tf.reshape(taps[:, k], [-1, 1, 1, 1]) * window
  return tf.floor((out + float(ONE // 2)) / float(ONE))


def gaussian_blur(images01, sigmas, max_sigma=MAX_SIGMA):
  """ImageFilter.GaussianBlur(radius=sigma) per image: three box passes along the rows' length
  (horizontal) and then three down the columns, as BoxBlur.c orders them."""
  reach = _reach(max_sigma)
  taps = box_taps(tf.reshape(tf.cast(sigmas, tf.float32), [-1]), reach)
  levels = tf.cast(tf.floor(_levels(images01) + 0.5), tf.float64)  # PIL's image is 8-bit
  for axis in (2, 1):
    for _ in range(BLUR_PASSES):
      levels = _box_pass(levels, taps, reach, axis)
  return tf.cast(levels, images01.dtype) / 255.0
