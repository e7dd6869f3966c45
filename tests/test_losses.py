"""Each loss of tfssl/losses.py against a NumPy transcription of its paper's / reference's formula."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl import losses


def _unit(a):
  return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _log_softmax(a):
  a = a - a.max(axis=1, keepdims=True)
  return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


# ---- NT-Xent ---------------------------------------------------------------------------------

def _nt_xent_paper(z1, z2, t):
  """SimCLR paper eq. 1: l(i, j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t) over the 2N views,
  L = 1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)]."""
  z = _unit(np.concatenate([z1, z2]).astype(np.float64))
  n = len(z1)
  s = z @ z.T / t
  total = 0.0
  for i in range(2 * n):
    j = (i + n) % (2 * n)
    others = [s[i, k] for k in range(2 * n) if k != i]
    total += -(s[i, j] - np.log(np.sum(np.exp(others))))
  return total / (2 * n)


def test_nt_xent_is_the_sum_of_both_directions_of_the_paper_loss():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
  loss, logits_ab, labels = losses.nt_xent(z1, z2, temperature=0.5)
  # The paper averages the 2N terms; SimCLR's code (and the seed) sums the two directions.
  np.testing.assert_allclose(loss.numpy(), 2 * _nt_xent_paper(z1, z2, 0.5), rtol=1e-5)
  np.testing.assert_allclose(logits_ab.numpy(), _unit(z1) @ _unit(z2).T / 0.5, rtol=1e-5, atol=1e-6)
  assert labels.shape == (6, 12)
  np.testing.assert_array_equal(np.argmax(labels.numpy(), 1), np.arange(6))
  np.testing.assert_array_equal(labels.numpy().sum(1), np.ones(6))


def test_nt_xent_without_normalisation_uses_raw_dot_products():
  rng = np.random.default_rng(1)
  z1, z2 = (0.3 * rng.normal(size=(2, 4, 3))).astype(np.float32)
  _, logits_ab, _ = losses.nt_xent(z1, z2, temperature=0.1, normalize=False)
  np.testing.assert_allclose(logits_ab.numpy(), z1 @ z2.T / 0.1, rtol=1e-5, atol=1e-6)


def test_nt_xent_computes_in_float32_from_half_precision_inputs():
  rng = np.random.default_rng(2)
  z1, z2 = rng.normal(size=(2, 4, 8)).astype(np.float16)
  loss, _, _ = losses.nt_xent(tf.constant(z1), tf.constant(z2), temperature=0.1)
  assert loss.dtype == tf.float32
  expected = 2 * _nt_xent_paper(z1.astype(np.float32), z2.astype(np.float32), 0.1)
  np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-4)


# ---- GNT-Xent --------------------------------------------------------------------------------

def _gnt_xent_seed(x, y, aux, t, off_diagonal=None):
  """AVA_cifar LossNet: S = exp(a b^T / t); negatives are 'sum - diagonal' as the seed writes it,
  or (off_diagonal=True) the sum over j != i, the same number without float64's cancellation once
  the diagonal dwarfs the rest (small temperatures)."""
  x, y, aux = (_unit(v.astype(np.float64)) for v in (x, y, aux))

  def sim(a, b):
    return np.exp(a @ b.T / t)

  def negatives(s):
    if off_diagonal:
      return np.where(np.eye(len(s), dtype=bool), 0.0, s).sum(1)
    return s.sum(1) - np.diag(s)

  s_xy, s_xx, s_yy = sim(x, y), sim(x, x), sim(y, y)
  denominator = negatives(s_xy) + negatives(s_xx) + negatives(s_yy) + 1e-10
  total = np.mean(-2 * np.log(np.diag(s_xy) / denominator))
  for a, b in ((x, aux), (y, aux), (aux, x), (aux, y)):
    s = sim(a, b)
    total += np.mean(-np.log(np.diag(s) / negatives(s)))
  return total


def test_gnt_xent_matches_the_seed_formula():
  rng = np.random.default_rng(3)
  x, y, aux = rng.normal(size=(3, 8, 16)).astype(np.float32)
  loss = losses.gnt_xent(x, y, aux, temperature=0.1)
  np.testing.assert_allclose(loss.numpy(), _gnt_xent_seed(x, y, aux, 0.1), rtol=1e-5)


def test_gnt_xent_goes_negative_when_views_agree_as_the_seed_logs_show():
  # The positive is not in its own denominator, so well-separated identical views give < 0.
  x = np.eye(8, dtype=np.float32)
  loss = losses.gnt_xent(x, x, x, temperature=0.1)
  expected = _gnt_xent_seed(x, x, x, 0.1)
  assert expected < 0
  np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


def test_gnt_xent_stays_exact_where_float32_exponentials_overflow():
  rng = np.random.default_rng(4)
  x, y, aux = rng.normal(size=(3, 6, 4)).astype(np.float32)
  # exp(1 / 0.005) = exp(200) is inf in float32 (not in the float64 reference).
  loss = losses.gnt_xent(x, y, aux, temperature=0.005).numpy()
  np.testing.assert_allclose(loss, _gnt_xent_seed(x, y, aux, 0.005, off_diagonal=True), rtol=1e-4)


# ---- semi-hard triplet -----------------------------------------------------------------------

def _triplet_brute_force(labels, emb, margin, branches):
  """FaceNet semi-hard mining as tf.contrib's, one (anchor, positive) pair at a time."""
  d = ((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1)
  total, pairs = 0.0, 0
  for a in range(len(labels)):
    negatives = [d[a, n] for n in range(len(labels)) if labels[n] != labels[a]]
    for p in range(len(labels)):
      if p == a or labels[p] != labels[a]:
        continue
      farther = [dn for dn in negatives if dn > d[a, p]]
      branches.add("semi-hard" if farther else "fallback")
      d_an = min(farther) if farther else max(negatives)
      total += max(margin + d[a, p] - d_an, 0.0)
      pairs += 1
  return total / pairs


def test_triplet_semihard_matches_brute_force_on_random_embeddings():
  rng = np.random.default_rng(5)
  branches = set()
  for trial in range(6):
    labels = rng.integers(0, 4, size=16)
    emb = rng.normal(size=(16, 6)).astype(np.float32) * (0.3 + 0.2 * trial)
    got = losses.triplet_semihard_loss(labels, emb, margin=0.5).numpy()
    want = _triplet_brute_force(labels, emb.astype(np.float64), 0.5, branches)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  assert branches == {"semi-hard", "fallback"}  # both mining rules were exercised


def test_triplet_semihard_on_a_hand_computed_line():
  # Points 0, 1 (class 0) and 2, 3 (class 1) on a line; squared distances 1, 4, 9.
  # Every (a, p) has d_ap = 1 and the nearest negative beyond 1 at 4: loss = margin + 1 - 4.
  emb = np.array([[0.0], [1.0], [2.0], [3.0]], np.float32)
  labels = np.array([0, 0, 1, 1])
  np.testing.assert_allclose(losses.triplet_semihard_loss(labels, emb, margin=4.0).numpy(), 1.0,
                             rtol=1e-6)
  # Points 0, 2 (class 0) and 1 (class 1): for (0, 2) d_ap = 4 and the only negative is at 1,
  # not farther: the fallback takes it, max(m + 4 - 1, 0) = m + 3 for both pairs.
  emb = np.array([[0.0], [1.0], [2.0]], np.float32)
  labels = np.array([0, 1, 0])
  np.testing.assert_allclose(losses.triplet_semihard_loss(labels, emb, margin=0.5).numpy(), 3.5,
                             rtol=1e-6)


def test_triplet_semihard_gradient_is_finite():
  rng = np.random.default_rng(6)
  emb = tf.constant(rng.normal(size=(8, 4)), tf.float32)
  labels = tf.constant([0, 0, 0, 0, 1, 1, 1, 1])
  with tf.GradientTape() as tape:
    tape.watch(emb)
    loss = losses.triplet_semihard_loss(labels, emb, margin=1.0)
  grad = tape.gradient(loss, emb).numpy()
  assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


# ---- BYOL ------------------------------------------------------------------------------------

def test_byol_regression_is_two_minus_two_cosine_per_example():
  rng = np.random.default_rng(7)
  p, z = rng.normal(size=(2, 5, 7)).astype(np.float32)
  got = losses.byol_regression(p, 3.0 * z).numpy()
  cos = (p * z).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(z, axis=1)
  np.testing.assert_allclose(got, 2 - 2 * cos, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got, ((_unit(p) - _unit(z)) ** 2).sum(1), rtol=1e-5, atol=1e-6)


# ---- SwAV ------------------------------------------------------------------------------------

def _sinkhorn_official(scores, epsilon, iterations):
  """distributed_sinkhorn of main_swav.py on one process, in float64."""
  q = np.exp(scores.astype(np.float64) / epsilon).T
  k, b = q.shape
  q /= q.sum()
  for _ in range(iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  return (q * b).T


def test_sinkhorn_matches_the_official_iteration():
  rng = np.random.default_rng(8)
  scores = np.tanh(rng.normal(size=(12, 5))).astype(np.float32)
  got = losses.sinkhorn(scores, epsilon=0.05, iterations=3).numpy()
  np.testing.assert_allclose(got, _sinkhorn_official(scores, 0.05, 3), rtol=1e-4, atol=1e-7)


def test_sinkhorn_marginals():
  rng = np.random.default_rng(9)
  scores = np.tanh(rng.normal(size=(20, 4))).astype(np.float32)
  codes = losses.sinkhorn(scores, epsilon=0.5, iterations=100).numpy()
  # The last step normalises samples: each sample's codes sum to 1 exactly.
  np.testing.assert_allclose(codes.sum(1), np.ones(20), rtol=1e-5)
  # Converged, each prototype gets an equal share: B/K samples (Q's rows sum to 1/K).
  np.testing.assert_allclose(codes.sum(0), np.full(4, 20 / 4), rtol=1e-3)


def test_sinkhorn_is_finite_for_scores_whose_exponential_overflows():
  rng = np.random.default_rng(10)
  scores = np.tanh(rng.normal(size=(10, 6))).astype(np.float32)
  big = scores + 50.0  # exp(51 / 0.05) is inf; a global shift must not change the codes
  got = losses.sinkhorn(big, epsilon=0.05, iterations=3).numpy()
  np.testing.assert_allclose(got, _sinkhorn_official(scores, 0.05, 3), rtol=1e-4, atol=1e-7)


def _swav_official(scores, crops_for_assign, t, eps, iters, queue=None):
  """The loss loop of main_swav.py, in NumPy."""
  bs = len(scores[0])
  loss = 0.0
  for i, crop in enumerate(crops_for_assign):
    out = scores[crop]
    if queue is not None:
      out = np.concatenate([queue[i], out])
    q = _sinkhorn_official(out, eps, iters)[-bs:]
    sub = 0.0
    for v in np.delete(np.arange(len(scores)), crop):
      sub -= np.mean(np.sum(q * _log_softmax(scores[v].astype(np.float64) / t), axis=1))
    loss += sub / (len(scores) - 1)
  return loss / len(crops_for_assign)


def _swav_inputs(seed, crops=4, batch=6, k=5, queue=0):
  rng = np.random.default_rng(seed)
  scores = [np.tanh(rng.normal(size=(batch, k))).astype(np.float32) for _ in range(crops)]
  queued = [np.tanh(rng.normal(size=(queue, k))).astype(np.float32) for _ in range(2)]
  return scores, queued


def test_swav_loss_matches_the_official_loop():
  scores, _ = _swav_inputs(11)
  got = losses.swav_loss(scores, [0, 1], temperature=0.1, epsilon=0.05, iterations=3)
  np.testing.assert_allclose(got.numpy(), _swav_official(scores, [0, 1], 0.1, 0.05, 3), rtol=1e-5)


def test_swav_loss_with_a_queue_matches_the_official_loop():
  scores, queue = _swav_inputs(12, crops=3, queue=9)
  got = losses.swav_loss(scores, [0, 1], temperature=0.1, epsilon=0.05, iterations=3,
                         queue_scores=queue)
  want = _swav_official(scores, [0, 1], 0.1, 0.05, 3, queue=queue)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
  # The queue matters: without it the codes (and the loss) differ.
  assert abs(want - _swav_official(scores, [0, 1], 0.1, 0.05, 3)) > 1e-4


def test_swav_loss_gradient_does_not_flow_through_the_codes():
  scores, _ = _swav_inputs(13, crops=3)
  t, bs = 0.1, 6
  variables = [tf.constant(s) for s in scores]
  with tf.GradientTape() as tape:
    tape.watch(variables)
    loss = losses.swav_loss(variables, [0, 1], temperature=t, epsilon=0.05, iterations=3)
  grads = [g.numpy() for g in tape.gradient(loss, variables)]
  codes = [_sinkhorn_official(scores[c], 0.05, 3) for c in (0, 1)]

  def softmax(a):
    return np.exp(_log_softmax(a / t))

  # d/dx of -mean_b sum_k q log_softmax(x / t) with q constant is (softmax(x / t) - q) / (t B);
  # each term carries 1 / (crops - 1) / len(crops_for_assign) = 1/4.
  want = [
      (softmax(scores[0]) - codes[1]) / (t * bs) / 4,  # crop 0 is predicted from crop 1's codes
      (softmax(scores[1]) - codes[0]) / (t * bs) / 4,
      (2 * softmax(scores[2]) - codes[0] - codes[1]) / (t * bs) / 4,
  ]
  for got, expected in zip(grads, want):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_swav_loss_needs_two_crops():
  with pytest.raises(ValueError, match="at least 2 crops"):
    losses.swav_loss([np.zeros((2, 3), np.float32)], [0])
