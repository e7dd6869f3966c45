"""evaluation/fixed_features.py, the demo's one protocol: its linear classifier separates what is
linearly separable, the scaling is chosen on held-out training features (never the test set), and
the same features give the same numbers."""

import numpy as np

from tfssl.evaluation import fixed_features


def _blobs(n, dim, scale, seed):
  """Three classes whose means differ only in dimension 0, scaled by `scale`; the other
  dimensions are unit noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n)
  x = rng.normal(size=(n, dim)).astype(np.float32)
  x[:, 0] = (labels * 4.0 + rng.normal(size=n) * 0.3) * scale
  return x, labels


def test_the_linear_classifier_separates_separable_classes():
  x, y = _blobs(10000, 8, 1.0, 0)
  xt, yt = _blobs(1000, 8, 1.0, 1)
  assert fixed_features.linear_accuracy(x, y, xt, yt, 3) > 0.99
  # chance when the labels carry nothing the features have
  assert fixed_features.linear_accuracy(x, np.random.default_rng(2).permutation(y), xt, yt,
                                        3) < 0.5


def test_the_scaling_is_chosen_on_held_out_training_features_not_the_test_set():
  # the informative dimension is 1e-3 of the noise's scale: Adam's steps of at most 1e-2 cannot
  # grow its weight to the ~300 it needs as it is; standardised it separates
  x, y = _blobs(10000, 8, 1e-3, 0)
  xt, yt = _blobs(1000, 8, 1e-3, 1)
  as_is = fixed_features.linear_accuracy(x, y, xt, yt, 3)
  fit, test = fixed_features._standardise(x, xt)  # pylint: disable=protected-access
  standardised = fixed_features.linear_accuracy(fit, y, test, yt, 3)
  assert standardised > 0.99 > as_is + 0.1
  result = fixed_features.evaluate(x, y, xt, yt, 3)
  assert result["scaling"] == "standardised" and result["linear_top1"] > 0.99
  # test labels that no classifier can match do not move the choice
  scrambled = fixed_features.evaluate(x, y, xt, np.zeros_like(yt), 3)
  assert scrambled["scaling"] == "standardised"
  assert abs(scrambled["linear_top1"] - np.mean(yt == 0)) < 0.05


def test_the_same_features_give_the_same_numbers():
  x, y = _blobs(2000, 16, 1.0, 3)
  xt, yt = _blobs(500, 16, 1.0, 4)
  x[:, 0] += np.random.default_rng(5).normal(size=2000) * 4  # not separable: accuracy < 1
  first = fixed_features.evaluate(x, y, xt, yt, 3)
  assert fixed_features.evaluate(x, y, xt, yt, 3) == first
  assert 0.4 < first["linear_top1"] < 1.0 and 0.0 < first["knn_top1"] < 1.0
