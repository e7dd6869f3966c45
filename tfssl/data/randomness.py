"""Seeded randomness for the preprocessing chain: every random decision is reproducible.

Inside the input pipeline each example carries a stateless seed (derived from --random_seed);
while a chain is traced for that example, `next_seed()` hands out seeds folded from it, one per
random decision in chain order, so a fixed --random_seed repeats the same pixels. The chain's ops
draw that way (implicitly); the per-image helpers of image_ops take an explicit `seed` instead,
because image_ops.map_images splits one seed per image of a stack. `uniform`, `coin`, `randint`
and `apply_with_probability` are the decisions the view-making ops share.
"""

import threading

import tensorflow as tf

_SEEDS = threading.local()


class SeedScope:
  """While a chain is traced for one example, hands out seeds folded from that example's seed."""

  def __init__(self, seed):
    self.seed = seed
    self.count = 0

  def __enter__(self):
    if not hasattr(_SEEDS, "stack"):
      _SEEDS.stack = []
    _SEEDS.stack.append(self)
    return self

  def __exit__(self, *exc):
    _SEEDS.stack.pop()


def next_seed():
  """A fresh stateless seed ([2] int64) for one random decision of an op.

  Within the pipeline it is derived from the example's seed and the decision's place in the chain;
  called outside a chain (an op used on its own) it is drawn at random.
  """
  stack = getattr(_SEEDS, "stack", None)
  if stack and stack[-1].seed is not None:
    scope = stack[-1]
    scope.count += 1
    return tf.random.experimental.stateless_fold_in(scope.seed, scope.count)
  return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)


def uniform(low, high):
  return tf.random.stateless_uniform([], next_seed(), low, high, dtype=tf.float32)


def coin(p):
  return tf.random.stateless_uniform([], next_seed()) < p


def randint(n):
  return tf.random.stateless_uniform([], next_seed(), 0, n, dtype=tf.int32)


def apply_with_probability(fn, image, probability, seed=None):
  """fn(image) with the given probability, else the image. A probability of 0 or 1 draws nothing;
  otherwise the decision uses `seed`, or the chain's next seed."""
  if probability <= 0.0:
    return image
  if probability >= 1.0:
    return fn(image)
  draw = tf.random.stateless_uniform([], next_seed() if seed is None else seed)
  return tf.cond(draw < probability, lambda: fn(image), lambda: image)
