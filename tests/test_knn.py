"""The weighted kNN vote (InstDisc protocol) against hand computations and a brute-force NumPy one."""

import numpy as np
import tensorflow as tf

from tfssl.evaluation import knn


def _on_circle(degrees, norms=None):
  radians = np.deg2rad(np.asarray(degrees, np.float64))
  points = np.stack([np.cos(radians), np.sin(radians), np.zeros_like(radians)], 1)
  if norms is not None:
    points *= np.asarray(norms, np.float64)[:, None]
  return points.astype(np.float32)


def test_weights_exp_sim_over_t_outvote_the_majority():
  # Query at 0 degrees, label 0. Neighbours: class 0 at cos 1, two of class 1 at cos 0.8.
  bank = np.array([[1, 0], [0.8, 0.6], [0.8, -0.6], [0, 1], [-1, 0]], np.float32)
  bank_labels = [0, 1, 1, 2, 0]
  query = np.array([[2.0, 0.0]], np.float32)
  # t = 0.1: class 0 scores e^10 = 22026 > class 1's 2 e^8 = 5962: a hit.
  got = knn.weighted_knn(bank, bank_labels, query, [0], num_classes=3, k=3, temperature=0.1)
  assert got == {"top1": 1.0, "top5": 1.0}
  # t = 1: e^1 = 2.72 < 2 e^0.8 = 4.45, the two class-1 neighbours win: a miss (top-5 still hits).
  got = knn.weighted_knn(bank, bank_labels, query, [0], num_classes=3, k=3, temperature=1.0)
  assert got == {"top1": 0.0, "top5": 1.0}
  # k = 1 only sees the class-0 neighbour, whatever the temperature.
  got = knn.weighted_knn(bank, bank_labels, query, [0], num_classes=3, k=1, temperature=1.0)
  assert got["top1"] == 1.0


def test_top5_on_a_hand_ranked_bank():
  # Six neighbours at 0, 10, ..., 50 degrees from the query, one class each, so the class ranking
  # is 3, 1, 4, 0, 6, 2 (class 5 gets nothing). Norms differ to check the cosine is used: raw dot
  # products would rank the far, long vector first.
  bank = _on_circle([0, 10, 20, 30, 40, 50], norms=[1, 1, 1, 1, 1, 30])
  bank_labels = [3, 1, 4, 0, 6, 2]
  query = _on_circle([0], norms=[3])
  # Label 3 is first (top-1 and top-5), 6 is fifth (top-5 only), 2 is sixth (neither).
  for label, want in ((3, (1.0, 1.0)), (6, (0.0, 1.0)), (2, (0.0, 0.0))):
    got = knn.weighted_knn(bank, bank_labels, query, [label], num_classes=7, k=200,
                           temperature=0.1)
    assert (got["top1"], got["top5"]) == want, label
  # Several queries at once average the hits.
  got = knn.weighted_knn(bank, bank_labels, np.repeat(query, 3, 0), [3, 6, 2], num_classes=7)
  np.testing.assert_allclose([got["top1"], got["top5"]], [1 / 3, 2 / 3])


def _brute_force(bank, bank_labels, queries, query_labels, num_classes, k, t):
  """The whole [queries, bank] similarity matrix at once, as the seeds' KnnEval."""
  b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  sims = q.astype(np.float64) @ b.T
  top1 = top5 = 0
  for row, label in zip(sims, query_labels):
    nearest = np.argsort(-row, kind="stable")[:k]
    scores = np.zeros(num_classes)
    for j in nearest:
      scores[bank_labels[j]] += np.exp(row[j] / t)
    ranking = np.argsort(-scores, kind="stable")
    top1 += ranking[0] == label
    top5 += label in ranking[:5]
  return {"top1": top1 / len(query_labels), "top5": top5 / len(query_labels)}


def _clustered(seed, n_bank=300, n_query=64, classes=10, dim=16):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(classes, dim))
  bank_labels = rng.integers(0, classes, n_bank)
  query_labels = rng.integers(0, classes, n_query)
  bank = centres[bank_labels] + 1.3 * rng.normal(size=(n_bank, dim))
  queries = centres[query_labels] + 1.3 * rng.normal(size=(n_query, dim))
  return bank.astype(np.float32), bank_labels, queries.astype(np.float32), query_labels


def test_chunked_and_batched_equal_the_brute_force_vote():
  bank, bank_labels, queries, query_labels = _clustered(0)
  for k, t in ((20, 0.1), (7, 0.5), (50, 0.05)):
    want = _brute_force(bank, bank_labels, queries, query_labels, 10, k, t)
    assert 0.1 < want["top1"] < 0.95  # a task where the vote's details matter
    whole = knn.weighted_knn(bank, bank_labels, queries, query_labels, 10, k=k, temperature=t)
    pieces = knn.weighted_knn(bank, bank_labels, queries, query_labels, 10, k=k, temperature=t,
                              query_batch=9, bank_chunk=13)
    assert whole == want
    assert pieces == want


def test_never_compares_more_than_a_query_batch_with_a_bank_chunk(monkeypatch):
  bank, bank_labels, queries, query_labels = _clustered(1, n_bank=100, n_query=30)
  shapes = []
  merge = knn._merge_top_k

  def spy(q, chunk, chunk_labels, sims, labels):
    shapes.append((q.shape[0], chunk.shape[0]))
    return merge(q, chunk, chunk_labels, sims, labels)

  monkeypatch.setattr(knn, "_merge_top_k", spy)
  knn.weighted_knn(bank, bank_labels, queries, query_labels, 10, k=5, query_batch=8,
                   bank_chunk=32)
  # 4 query batches (8, 8, 8, 6) x 4 bank chunks (32, 32, 32, 4).
  assert len(shapes) == 16
  assert max(q for q, _ in shapes) == 8 and max(c for _, c in shapes) == 32
  assert sum(c for q, c in shapes if q == 6) == 100  # every chunk reached every query


def test_extract_features_pools_4d_end_points_and_flattens_the_rest():
  images = np.arange(5 * 2 * 2 * 3, dtype=np.float32).reshape(5, 2, 2, 3)
  labels = np.array([4, 1, 0, 3, 2])
  dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}).batch(2)

  def fn(x):
    return {"block": 2.0 * x, "flat": tf.cast(tf.reshape(x, [-1, 2, 6]), tf.float16)}

  features, got_labels = knn.extract_features(fn, dataset, "block")
  assert features.dtype == np.float32 and features.shape == (5, 3)
  np.testing.assert_allclose(features, 2.0 * images.mean(axis=(1, 2)))
  np.testing.assert_array_equal(got_labels, labels)
  features, _ = knn.extract_features(fn, dataset, "flat")
  assert features.dtype == np.float32 and features.shape == (5, 12)
  np.testing.assert_allclose(features, images.reshape(5, 12))
