"""k-nearest neighbours of a representation: the weighted kNN vote (Wu et al. 2018, InstDisc; the
AVA seed's KnnEval) and the neighbours themselves, for the trainer's monitor, the `knn_eval` command
and the retrieval pictures alike.

Each query votes with its k most cosine-similar bank features, neighbour j weighing exp(s_j / t)
for its class; the class with the largest summed weight is the prediction (top-5: the five
largest). The bank can be ImageNet-sized (1.28M x 2048 float32 is 10 GB): it is read in chunks,
each chunk L2-normalised and compared with every query batch once, and only the running top-k
(similarity, label) of each query is kept, so memory is O(queries x k + query_batch x chunk).
"""

import numpy as np
import tensorflow as tf


@tf.function(reduce_retracing=True)
def _merge_top_k(queries, chunk, chunk_start, best_sims, best_index):
  """Folds one bank chunk into each query's running top-k (similarity, bank row)."""
  sims = tf.matmul(queries, chunk, transpose_b=True)  # [query_batch, chunk]
  k = tf.shape(best_sims)[1]
  chunk_sims, chunk_idx = tf.math.top_k(sims, k=tf.minimum(k, tf.shape(sims)[1]))
  # The running best come first, so on a tie the lower bank row wins, as in one top_k.
  all_sims = tf.concat([best_sims, chunk_sims], axis=1)
  all_index = tf.concat([best_index, chunk_idx + chunk_start], axis=1)
  top_sims, pos = tf.math.top_k(all_sims, k=k)
  return top_sims, tf.gather(all_index, pos, batch_dims=1)


def _normalized(array):
  return tf.math.l2_normalize(tf.convert_to_tensor(np.asarray(array, np.float32)), axis=1)


def nearest_neighbours(bank, queries, k, query_batch=256, bank_chunk=65536):
  """(cosine similarities [M, k], bank rows [M, k]) of each query's k nearest bank rows, nearest
  first; k is capped at the bank size. Features may have any scale."""
  num_bank, num_queries = len(bank), len(queries)
  if num_bank == 0 or num_queries == 0:
    raise ValueError("kNN needs a non-empty bank and queries (got %d and %d)"
                     % (num_bank, num_queries))
  k = min(int(k), num_bank)
  best_sims = np.full((num_queries, k), -np.inf, np.float32)
  best_index = np.zeros((num_queries, k), np.int32)
  query_slices = [slice(s, min(s + query_batch, num_queries))
                  for s in range(0, num_queries, query_batch)]
  normalized_queries = [_normalized(queries[s]) for s in query_slices]
  for start in range(0, num_bank, bank_chunk):
    chunk = _normalized(bank[start:min(start + bank_chunk, num_bank)])
    for s, q in zip(query_slices, normalized_queries):
      sims, index = _merge_top_k(q, chunk, tf.constant(start, tf.int32), best_sims[s],
                                 best_index[s])
      best_sims[s], best_index[s] = sims.numpy(), index.numpy()
  return best_sims, best_index


def weighted_knn(bank, bank_labels, queries, query_labels, num_classes, k=200, temperature=0.1,
                 query_batch=256, bank_chunk=65536):
  """Top-1 / top-5 accuracy (fractions) of the weighted kNN vote of `bank` on `queries`.

  bank [N, D] and queries [M, D] are features (any scale: they are L2-normalised here, so the
  similarity is the cosine); labels are class indices. k is capped at the bank size.
  """
  bank_labels = np.asarray(bank_labels).astype(np.int32).reshape(-1)
  query_labels = np.asarray(query_labels).astype(np.int64).reshape(-1)
  if len(bank_labels) != len(bank) or len(query_labels) != len(queries):
    raise ValueError("weighted_knn: one label per feature row (bank %d vs %d, queries %d vs %d)"
                     % (len(bank), len(bank_labels), len(queries), len(query_labels)))
  best_sims, best_index = nearest_neighbours(bank, queries, k, query_batch, bank_chunk)
  best_labels = bank_labels[best_index]
  num_queries = len(query_labels)
  query_slices = [slice(s, min(s + query_batch, num_queries))
                  for s in range(0, num_queries, query_batch)]
  hits_top1 = hits_top5 = 0
  for s in query_slices:
    ranking = _rank_classes(best_sims[s], best_labels[s], num_classes, temperature)
    hits = ranking[:, :min(5, num_classes)] == query_labels[s, None]
    hits_top1 += int(hits[:, 0].sum())
    hits_top5 += int(hits.any(axis=1).sum())
  return {"top1": hits_top1 / num_queries, "top5": hits_top5 / num_queries}


def _rank_classes(sims, labels, num_classes, temperature):
  """Classes by decreasing summed weight exp(sim / t) of the neighbours voting for them."""
  # Shifting each query's similarities by its best one rescales all its weights by one factor,
  # which leaves the ranking unchanged and keeps exp() finite for small temperatures.
  weights = np.exp((sims - sims[:, :1]) / temperature)
  scores = np.zeros((len(sims), num_classes), np.float64)
  np.add.at(scores, (np.arange(len(sims))[:, None], labels), weights)
  # A stable sort keeps the lower class first on ties, as tf.math.top_k does.
  return np.argsort(-scores, axis=1, kind="stable")


def _combined(features, views, combine):
  """[N * V, D] features of V views per example -> [N, D'] (COMBINE_MODES, as linear_probe's)."""
  per_example = np.reshape(features, [-1, views, features.shape[-1]])
  if combine == "avg_pool":
    return per_example.mean(axis=1)
  if combine == "max_pool":
    return per_example.max(axis=1)
  if combine == "concat":
    return per_example.reshape(per_example.shape[0], -1)
  raise ValueError("unknown --combine_patches=%s; choose avg_pool, max_pool or concat" % combine)


def extract_features(fn, dataset, end_point, combine="avg_pool"):
  """Runs `fn(images) -> end_points dict` over a dataset of {"image", "label"} batches.

  Returns (features float32 [N, D], labels int [N]); a 4-D end point is global-average-pooled,
  anything else flattened per example. Where an evaluation chain keeps several views per example
  ([N, V, h, w, c]: a patch model's tiles, exemplar's instances), each view goes through `fn` and
  their features are combined per example by `combine` (--combine_patches), as linear
  evaluation combines them.
  """
  features, labels = [], []
  for batch in dataset:
    images = batch["image"]
    views = images.shape[1] if len(images.shape) == 5 else None
    if views is not None:
      images = tf.reshape(images, [-1] + images.shape[2:].as_list())
    out = fn(images)[end_point]
    if len(out.shape) == 4:
      out = tf.reduce_mean(out, axis=[1, 2])
    out = tf.reshape(tf.cast(out, tf.float32), [tf.shape(out)[0], -1]).numpy()
    features.append(_combined(out, views, combine) if views is not None else out)
    labels.append(np.asarray(batch["label"]))
  if not features:
    raise ValueError("extract_features: the dataset yielded no batches")
  return np.concatenate(features), np.concatenate(labels)


def knn_accuracy(representation, bank_dataset, query_dataset, end_point, num_classes, k=200,
                 temperature=0.1, combine="avg_pool"):
  """{"top1", "top5"} of the weighted vote: features of `end_point` from `representation`
  (images -> end points dict) over the bank and query datasets of {"image", "label"} batches
  (several views per example combined by `combine`: extract_features)."""
  bank, bank_labels = extract_features(representation, bank_dataset, end_point, combine)
  queries, query_labels = extract_features(representation, query_dataset, end_point, combine)
  return weighted_knn(bank, bank_labels, queries, query_labels, num_classes, k=k,
                      temperature=temperature)
