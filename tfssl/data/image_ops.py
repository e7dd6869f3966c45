"""Image helpers behind the preprocessing ops: one image [H, W, C] or a stack [..., H, W, C].

Random helpers take an explicit stateless `seed` (a [2] int tensor): the input pipeline hands every
example its own seed, so a fixed --random_seed gives the same pixels however tf.data schedules the
parallel map. Pixel values stay on the [0, 255] scale until an op says otherwise; outputs of ops
that compute are float32.
"""

import tensorflow as tf


def _per_element_seeds(seed, n):
  # Full-range int64 draws: every stacked element gets an independent stateless seed.
  return tf.random.stateless_uniform([n, 2], seed=seed, minval=None, maxval=None, dtype=tf.int64)


def map_images(fn, images, dtype, seed=None):
  """fn(image) or fn(image, seed) on one HWC image, or on each image of a stack (..., H, W, C).

  `dtype` is what fn returns. With a seed, each stacked image gets its own derived seed.
  """
  rank = images.shape.rank
  if rank is None or rank < 3:
    raise ValueError("expected an image [H, W, C] or a stack [..., H, W, C], got shape %s"
                     % images.shape)
  if rank == 3:
    return fn(images) if seed is None else fn(images, seed)
  leading = tf.shape(images)[:-3]
  flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[-3:]], 0))
  flat.set_shape([None] + images.shape[-3:].as_list())
  spec = tf.TensorSpec(None, dtype)
  if seed is None:
    out = tf.map_fn(fn, flat, fn_output_signature=spec)
  else:
    seeds = _per_element_seeds(seed, tf.shape(flat)[0])
    out = tf.map_fn(lambda x: fn(x[0], x[1]), (flat, seeds), fn_output_signature=spec)
  result = tf.reshape(out, tf.concat([leading, tf.shape(out)[1:]], 0))
  result.set_shape(images.shape[:-3].concatenate(out.shape[1:]))
  return result


def to_float(image):
  return tf.cast(image, tf.float32)


def central_crop(image, height, width):
  """The centred [height, width] window; offsets floor((H - height) / 2) as the original."""
  shape = tf.shape(image)
  top = (shape[-3] - height) // 2
  left = (shape[-2] - width) // 2
  return tf.image.crop_to_bounding_box(image, top, left, height, width)


def random_crop(image, height, width, seed):
  channels = image.shape[-1] if image.shape[-1] is not None else tf.shape(image)[-1]
  return tf.image.stateless_random_crop(image, [height, width, channels], seed=seed)


def crop(image, height, width, is_training, seed=None):
  """Random crop in training; central in eval (the original's choice: arXiv 1703.07737, Table 5)."""
  if is_training:
    return random_crop(image, height, width, seed)
  return central_crop(image, height, width)


def resize(images, size, method="bilinear", antialias=False):
  """tf.image.resize on any rank >= 3 (it takes 3 or 4); float32 out, values not rescaled."""
  rank = images.shape.rank
  if rank is not None and rank > 4:
    leading = tf.shape(images)[:-3]
    flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[-3:]], 0))
    out = resize(flat, size, method, antialias)
    result = tf.reshape(out, tf.concat([leading, tf.shape(out)[1:]], 0))
    result.set_shape(images.shape[:-3].concatenate(out.shape[1:]))
    return result
  # NEAREST keeps the input dtype; cast so that every method gives the same float32 output.
  return to_float(tf.image.resize(images, size, method=method, antialias=antialias))


def smaller_side_size(height, width, smaller_size):
  """(h, w) scaled so that min(h, w) == smaller_size, rounded as the original's resize_small."""
  ratio = tf.cast(smaller_size, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
  new_h = tf.cast(tf.round(tf.cast(height, tf.float32) * ratio), tf.int32)
  new_w = tf.cast(tf.round(tf.cast(width, tf.float32) * ratio), tf.int32)
  return new_h, new_w


def to_gray(image):
  """Mean of R, G and B tiled back to 3 channels (computed in float32: a uint8 mean overflows)."""
  gray = tf.reduce_mean(to_float(image), axis=-1, keepdims=True)
  return tf.tile(gray, [1] * (image.shape.rank - 1) + [3])


def four_rotations(image):
  """[4, H, W, C]: rotations by k * 90 degrees counter-clockwise, k = 0..3 (np.rot90(image, k))."""
  return tf.stack([tf.image.rot90(image, k) for k in range(4)])


def crop_patches(image, splits_per_side, patch_jitter, is_training, seed=None):
  """[s*s, hp, wp, C] tiles of a splits_per_side x splits_per_side grid, in row-major order.

  Each cell is (H // s, W // s); with jitter > 0 a (cell - jitter) tile is cut from it, at random
  in training and centred in eval, so that neighbouring tiles do not share edges.
  """
  height, width = image.shape[-3], image.shape[-2]
  if height is None or width is None:
    raise ValueError("crop_patches needs images of a known size: put resize or crop before it in "
                     "--preprocessing")
  cell_h, cell_w = height // splits_per_side, width // splits_per_side
  patch_h, patch_w = cell_h - patch_jitter, cell_w - patch_jitter
  if patch_h <= 0 or patch_w <= 0:
    raise ValueError("crop_patches: cells of %dx%d pixels leave nothing after --patch_jitter=%d; "
                     "use a larger image or a smaller jitter" % (cell_h, cell_w, patch_jitter))
  cells = splits_per_side * splits_per_side
  seeds = _per_element_seeds(seed, cells) if (is_training and patch_jitter > 0) else None
  patches = []
  for row in range(splits_per_side):
    for col in range(splits_per_side):
      patch = tf.image.crop_to_bounding_box(image, row * cell_h, col * cell_w, cell_h, cell_w)
      if patch_jitter > 0:
        cell_seed = seeds[len(patches)] if seeds is not None else None
        patch = crop(patch, patch_h, patch_w, is_training, cell_seed)
      patches.append(patch)
  return tf.stack(patches)
