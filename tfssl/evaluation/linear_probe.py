"""Feature taps for linear evaluation, as the original's linear_eval.py pooled and combined them.

- A tap with more than 9000 features (h*w*c) is pooled down (`pool_mode`):
  `max` / `avg`: kernel = stride = ceil(sqrt(h*w*c / 9000)), clipped to [1, h], VALID padding;
  `adaptive_max` / `adaptive_avg`: to an s x s grid with s the floor or the ceil of
  sqrt(9000 / c), whichever gives s*s*c closer to 9000, as the original (RevNet x4 block1,
  c = 1024: 3x3, 9216 features, not 2x2, 4096). The original
  used tf.nn.fractional_*_pool, whose bins are random per call; tfssl uses fixed adaptive bins
  (bin i covers rows floor(i*h/s) .. ceil((i+1)*h/s)), so evaluation is deterministic.
- 2-D taps are used as they are.
- Patch models (input [N, P, h, w, c]): each patch is run and pooled on its own (always to <= 9000,
  as the original, whose `concat` division never reached the pooling), then the P patch features
  are combined: `avg_pool` (mean), `max_pool` (max) or `concat`.
"""

import math

import numpy as np
import tensorflow as tf

TARGET_FEATURES = 9000


def _adaptive_pool(x, side, reduce_fn):
  h, w = int(x.shape[1]), int(x.shape[2])
  rows = []
  for i in range(side):
    r0, r1 = (i * h) // side, -(-((i + 1) * h) // side)
    cols = []
    for j in range(side):
      c0, c1 = (j * w) // side, -(-((j + 1) * w) // side)
      cols.append(reduce_fn(x[:, r0:r1, c0:c1, :], axis=[1, 2]))
    rows.append(tf.stack(cols, axis=1))
  return tf.stack(rows, axis=1)


def adaptive_side(channels, target=TARGET_FEATURES):
  """The grid side s whose s*s*channels lies closest to `target` (the floor on a tie), at least 1."""
  low = max(1, int(math.floor(math.sqrt(target / channels))))
  high = low + 1
  return high if abs(high * high * channels - target) < abs(low * low * channels - target) else low


POOL_MODES = ("adaptive_max", "adaptive_avg", "max", "avg")
COMBINE_MODES = ("avg_pool", "max_pool", "concat")


def pool_tap(x, pool_mode="adaptive_max", target=TARGET_FEATURES):
  """Pools a 4-D tap with more than `target` features; other taps pass through."""
  x = tf.cast(x, tf.float32)
  if x.shape.rank != 4:
    return x
  h, w, c = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
  if h * w * c <= target:
    return x
  if pool_mode in ("max", "avg"):
    k = int(min(max(1, math.ceil(math.sqrt(h * w * c / target))), h))
    pool = tf.nn.max_pool2d if pool_mode == "max" else tf.nn.avg_pool2d
    return pool(x, ksize=k, strides=k, padding="VALID")
  if pool_mode in ("adaptive_max", "adaptive_avg"):
    side = min(adaptive_side(c, target), h, w)
    reduce_fn = tf.reduce_max if pool_mode == "adaptive_max" else tf.reduce_mean
    return _adaptive_pool(x, side, reduce_fn)
  raise ValueError("unknown --pool_mode=%s; choose adaptive_max, adaptive_avg, max or avg" % pool_mode)


def flatten(x):
  """[N, ...] -> [N, D], keeping D static so the heads can be built."""
  if x.shape.rank <= 2:
    return x
  return tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])


def image_taps(representation_fn, images, pool_mode):
  """{tap: [N, D]} for an image model."""
  taps = representation_fn(images)
  return {name: flatten(pool_tap(t, pool_mode)) for name, t in taps.items()}


def patch_taps(representation_fn, patches, pool_mode, combine="avg_pool"):
  """{tap: [N, D]} for a patch model fed [N, P, h, w, c]: per-patch taps combined over P."""
  num_patches = int(patches.shape[1])
  flat = tf.reshape(patches, [-1] + patches.shape[2:].as_list())
  out = {}
  for name, t in representation_fn(flat).items():
    t = pool_tap(t, pool_mode)
    t = tf.reshape(t, [-1, num_patches] + t.shape[1:].as_list())
    if combine == "avg_pool":
      t = tf.reduce_mean(t, axis=1)
    elif combine == "max_pool":
      t = tf.reduce_max(t, axis=1)
    elif combine == "concat":
      # [N, P, h, w, c] -> [N, h, w, P*c], the original's channel concatenation.
      perm = [0] + list(range(2, t.shape.rank)) + [1]
      t = tf.transpose(t, perm)
      t = tf.reshape(t, [-1] + t.shape[1:-2].as_list() + [int(t.shape[-2]) * int(t.shape[-1])])
    else:
      raise ValueError("unknown --combine_patches=%s; choose avg_pool, max_pool or concat" % combine)
    out[name] = flatten(t)
  return out
