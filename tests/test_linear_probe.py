"""Linear evaluation's feature taps: the original's pooling to about 9000 features."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl.evaluation import linear_probe


def test_adaptive_pooling_picks_the_side_closest_to_9000_features():
  # RevNet x4 block1: 56x56x1024. sqrt(9000 / 1024) = 2.96: 3x3 gives 9216 features (216 away),
  # 2x2 only 4096, so the original's choice is 3x3.
  tap = tf.random.uniform([1, 56, 56, 1024], seed=0)
  pooled = linear_probe.pool_tap(tap, "adaptive_max")
  assert pooled.shape == (1, 3, 3, 1024)
  # Each bin is the max over its rows floor(i*56/3)..ceil((i+1)*56/3).
  x = tap.numpy()[0]
  np.testing.assert_allclose(pooled.numpy()[0, 0, 0], x[0:19, 0:19].max(axis=(0, 1)))
  np.testing.assert_allclose(pooled.numpy()[0, 2, 1], x[37:56, 18:38].max(axis=(0, 1)))


@pytest.mark.parametrize("channels, side", [(1024, 3), (2048, 2), (256, 6), (512, 4), (64, 12),
                                            (8192, 1), (20000, 1)])
def test_adaptive_side_is_the_floor_or_the_ceil_whichever_is_closer(channels, side):
  # 2048: 2x2 = 8192 (808 away) beats 3x3 = 18432; 256: 6x6 = 9216 beats 5x5 = 6400;
  # 512: 4x4 = 8192 beats 5x5 = 12800; 64: 12x12 = 9216 beats 11x11 = 7744.
  assert linear_probe.adaptive_side(channels) == side


def test_small_and_flat_taps_pass_through():
  small = tf.ones([2, 4, 4, 512])  # 8192 features
  assert linear_probe.pool_tap(small).shape == (2, 4, 4, 512)
  flat = tf.ones([2, 20000])
  assert linear_probe.pool_tap(flat).shape == (2, 20000)


def test_max_pooling_uses_the_originals_kernel():
  # ResNet x3 block4 (the original's linear_eval.py pooling): 7x7x6144 -> kernel = stride = ceil(sqrt(301056 / 9000)) = 6.
  pooled = linear_probe.pool_tap(tf.ones([1, 7, 7, 6144]), "max")
  assert pooled.shape == (1, 1, 1, 6144)
