"""The losses of tfssl's methods, each written from its paper and checked against its reference code.

Every loss runs per replica (inside `strategy.run`) and returns the mean over the replica's local
examples; the task divides by the replica count (tfssl/tasks/base.py `minimize`). Contrastive losses
gather their negatives from every replica with `cross_replica_concat`, whose gradient flows back to
the replica that made each row, so N replicas give the same loss and gradients as one replica on
the same global batch. Everything computes in float32 whatever the input dtype, so a mixed-precision
model can feed its float16 / bfloat16 outputs directly.
"""

import tensorflow as tf

# SimCLR's mask value for self-similarity logits: large enough that exp() is exactly 0 in float32.
LARGE_NUM = 1e9


def _f32(x):
  return tf.cast(x, tf.float32)


def _replica_context():
  """The replica context when there is more than one replica to talk to, else None."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync <= 1:
    return None
  return ctx


def replica_id():
  """This replica's index in the sync group (0 outside a multi-replica context)."""
  ctx = _replica_context()
  if ctx is None:
    return tf.constant(0, tf.int32)
  return tf.cast(ctx.replica_id_in_sync_group, tf.int32)


def cross_replica_concat(tensor):
  """Concatenates `tensor` from all replicas along axis 0, replica 0 first.

  SimCLR's way: each replica scatters its rows into its own slot of a zero [replicas, ...]
  tensor and the slots are summed with all_reduce. (ReplicaContext.all_gather would read better
  but fails under MultiWorkerMirroredStrategy inside tf.function: its merge_call needs a device
  on the tensor.) The gradient of all_reduce(SUM) is the all_reduce of the upstream gradient, so
  each row's gradient from every replica's loss flows back to the replica that made it, which is
  what makes gathered negatives exact. Every replica must pass the same shape (training batches
  are drop_remainder). Identity with one replica, under the default strategy, and in
  cross-replica context.
  """
  ctx = _replica_context()
  if ctx is None:
    return tensor
  slots = tf.scatter_nd(indices=[[replica_id()]], updates=tensor[None],
                        shape=tf.concat([[ctx.num_replicas_in_sync], tf.shape(tensor)], axis=0))
  gathered = ctx.all_reduce(tf.distribute.ReduceOp.SUM, slots)
  return tf.reshape(gathered, tf.concat([[-1], tf.shape(tensor)[1:]], axis=0))


def all_reduce_sum(tensor):
  """Sum over replicas (identity where there is only one)."""
  ctx = _replica_context()
  if ctx is None:
    return tensor
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tensor)


def _global_positions(local_batch):
  """Index of each local row in the gathered batch: replica_id * local_batch + i."""
  return tf.range(local_batch) + replica_id() * local_batch


# ---------------------------------------------------------------------------------------------
# SimCLR

def nt_xent(z1, z2, temperature, normalize=True):
  """SimCLR's NT-Xent (`add_contrastive_loss` of SimCLR's TF2 code), negatives from all replicas.

  z1, z2: [B_local, D] projections of the two views (row i of each is the same image).
  For anchor z1_i the candidates are every gathered z2 (its positive z2_i among them) and every
  gathered z1 except itself (masked with -1e9); likewise for z2_i. The loss is the mean over local
  anchors of loss_a + loss_b, the SUM of the two directions, as SimCLR and the MindSpore seed do.

  Returns (loss, logits_ab, labels): logits_ab [B_local, B_global] (z1 against gathered z2, divided
  by the temperature) and labels [B_local, 2 * B_global], one-hot at each anchor's positive
  (column replica_id * B_local + i), exactly SimCLR's pair for its contrastive accuracy and entropy
  metrics (argmax(labels) == argmax(logits_ab)).
  """
  z1, z2 = _f32(z1), _f32(z2)
  if normalize:
    z1 = tf.math.l2_normalize(z1, -1)
    z2 = tf.math.l2_normalize(z2, -1)
  local_batch = tf.shape(z1)[0]
  z1_all = cross_replica_concat(z1)
  z2_all = cross_replica_concat(z2)
  global_batch = tf.shape(z1_all)[0]
  positives = _global_positions(local_batch)
  labels = tf.one_hot(positives, global_batch * 2)
  self_mask = tf.one_hot(positives, global_batch)

  logits_aa = tf.matmul(z1, z1_all, transpose_b=True) / temperature - self_mask * LARGE_NUM
  logits_bb = tf.matmul(z2, z2_all, transpose_b=True) / temperature - self_mask * LARGE_NUM
  logits_ab = tf.matmul(z1, z2_all, transpose_b=True) / temperature
  logits_ba = tf.matmul(z2, z1_all, transpose_b=True) / temperature

  loss_a = tf.nn.softmax_cross_entropy_with_logits(labels, tf.concat([logits_ab, logits_aa], 1))
  loss_b = tf.nn.softmax_cross_entropy_with_logits(labels, tf.concat([logits_ba, logits_bb], 1))
  return tf.reduce_mean(loss_a + loss_b), logits_ab, labels


# ---------------------------------------------------------------------------------------------
# AVA / AAG (GNT-Xent)

def _log_ratio(logits_sets, positive_logits, epsilon=None):
  """log( exp(pos) / (sum of exp(all non-positive logits) [+ epsilon]) ), row-wise and stable.

  logits_sets: list of [B, N_k] logits, already masked (-1e9 at removed entries); the optional
  epsilon joins the denominator as one more logit log(epsilon), so log-sum-exp stays exact.
  """
  parts = list(logits_sets)
  if epsilon is not None:
    rows = tf.shape(positive_logits)[0]
    parts.append(tf.fill([rows, 1], tf.math.log(tf.constant(epsilon, tf.float32))))
  return positive_logits - tf.reduce_logsumexp(tf.concat(parts, 1), axis=1)


def gnt_xent(x, y, aux, temperature=0.1, normalize=True):
  """AVA's GNT-Xent (MindSpore AVA_cifar `LossNet`), negatives gathered from all replicas.

  With S_ab = exp(a . b^T / t) over the global batch and i each local row (its positive at its
  global index):
    mutual = mean_i -2 log( S_xy[i,i] / (sum_{j!=i} S_xy[i,j] + sum_{j!=i} S_xx[i,j]
                                         + sum_{j!=i} S_yy[i,j] + 1e-10) )
    aux(a, b) = mean_i -log( S_ab[i,i] / sum_{j!=i} S_ab[i,j] )
    loss = mutual + aux(x, aux) + aux(y, aux) + aux(aux, x) + aux(aux, y)
  The positive is left out of its own denominator (so the loss can go negative, as the seed's
  logs show). The seed writes "sum - S[i,i]"; summing j != i is the same number without the
  cancellation, and the sums are done in log space so small temperatures cannot overflow.
  x, y, aux are the embeddings of the two standard views and the RandAugment view; the seed's
  network L2-normalises them, which `normalize` repeats (a no-op on normalised inputs).
  """
  x, y, aux = _f32(x), _f32(y), _f32(aux)
  if normalize:
    x, y, aux = (tf.math.l2_normalize(v, -1) for v in (x, y, aux))
  local_batch = tf.shape(x)[0]
  gathered = {name: cross_replica_concat(v) for name, v in (("x", x), ("y", y), ("aux", aux))}
  positives = _global_positions(local_batch)
  mask = tf.one_hot(positives, tf.shape(gathered["x"])[0]) * LARGE_NUM

  def logits(a, b_name):
    return tf.matmul(a, gathered[b_name], transpose_b=True) / temperature

  def positive_of(logit):
    return tf.gather(logit, positives, axis=1, batch_dims=1)  # row i's pair: column positives[i]

  l_xy, l_xx, l_yy = logits(x, "y"), logits(x, "x"), logits(y, "y")
  mutual = -2.0 * _log_ratio([l_xy - mask, l_xx - mask, l_yy - mask], positive_of(l_xy), 1e-10)
  total = tf.reduce_mean(mutual)
  for a, b_name in ((x, "aux"), (y, "aux"), (aux, "x"), (aux, "y")):
    l_ab = logits(a, b_name)
    total += tf.reduce_mean(-_log_ratio([l_ab - mask], positive_of(l_ab)))
  return total


# ---------------------------------------------------------------------------------------------
# Exemplar (FaceNet's semi-hard triplet loss)

def pairwise_squared_distance(embeddings):
  """[B, B] squared euclidean distances, clipped at 0 with an exact-zero diagonal (as contrib)."""
  e = _f32(embeddings)
  sq = tf.reduce_sum(tf.square(e), axis=1)
  d = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(e, e, transpose_b=True)
  d = tf.maximum(d, 0.0)
  return d * (1.0 - tf.eye(tf.shape(e)[0]))


def triplet_semihard_loss(labels, embeddings, margin=0.5):
  """The semi-hard triplet loss of tf.contrib.losses.metric_learning (FaceNet, Schroff et al. 2015).

  For every anchor a and positive p (same label, p != a), the negative is the one with the
  smallest d(a, n) strictly greater than d(a, p) (semi-hard); when no negative is that far, the
  largest d(a, n) (the anchor's easiest negative), as contrib. Distances are squared euclidean.
  loss = sum over (a, p) of max(margin + d(a, p) - d(a, n), 0) / number of (a, p) pairs.

  contrib finds the semi-hard negative with a [B*B, B] masked minimum; here each anchor's negative
  distances are sorted once and every d(a, p) is located with a binary search, the same choice in
  O(B^2) memory (the exemplar task's 512-embedding batches would need 0.5 GB the contrib way).
  The embeddings are used as given: the original normalised them with axis=0, a task decision.
  """
  labels = tf.reshape(labels, [-1])
  dist = pairwise_squared_distance(embeddings)
  same = tf.equal(labels[:, None], labels[None, :])
  negative = tf.logical_not(same)

  inf = tf.constant(float("inf"), tf.float32)
  sorted_neg = tf.sort(tf.where(negative, dist, inf), axis=1)
  num_neg = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1, keepdims=True)
  last = tf.maximum(num_neg - 1, 0)
  # First negative strictly farther than d(a, p), per (a, p).
  above = tf.searchsorted(sorted_neg, dist, side="right")
  semi_hard = tf.gather(sorted_neg, tf.minimum(above, last), batch_dims=1)
  # contrib's masked maximum over no negatives at all returns the row's minimum, the 0 diagonal.
  hardest_easy = tf.where(num_neg > 0, tf.gather(sorted_neg, last, batch_dims=1), 0.0)
  chosen = tf.where(above < num_neg, semi_hard, hardest_easy)

  positive_pairs = tf.cast(same, tf.float32) - tf.eye(tf.shape(labels)[0])
  hinge = tf.maximum((margin + dist - chosen) * positive_pairs, 0.0)
  return tf.reduce_sum(hinge) / tf.reduce_sum(positive_pairs)


# ---------------------------------------------------------------------------------------------
# BYOL

def byol_regression(p, z):
  """BYOL's per-example loss 2 - 2 cos(p, z) = ||p/|p| - z/|z|||^2, shape [B].

  p is the online predictor's output, z the target projection. The stop-gradient on z is the
  task's job (it owns the target network); this function differentiates through both.
  """
  p = tf.math.l2_normalize(_f32(p), -1)
  z = tf.math.l2_normalize(_f32(z), -1)
  return 2.0 - 2.0 * tf.reduce_sum(p * z, axis=-1)


# ---------------------------------------------------------------------------------------------
# SwAV

def sinkhorn(scores, epsilon=0.05, iterations=3):
  """SwAV's distributed Sinkhorn-Knopp (`distributed_sinkhorn` of main_swav.py), without gradient.

  scores: [B_local, K] prototype scores. Q = exp(scores / epsilon)^T is K x B over the global
  batch B (every sum over samples is all-reduced across replicas, so N replicas equal one):
  Q /= sum(Q); then `iterations` times: each prototype's row is scaled to total 1/K, each
  sample's column to 1/B; finally Q *= B. Returns the codes Q^T [B_local, K]: each sample's codes
  sum to 1, and each prototype gets about B/K samples' worth over the global batch.
  The global maximum score is subtracted first: a global factor cancels in the first
  normalisation, and it keeps exp() finite for any scores.
  """
  scores = tf.stop_gradient(_f32(scores))
  local_max = tf.reduce_max(scores)
  global_max = tf.reduce_max(cross_replica_concat(local_max[None]))
  q = tf.transpose(tf.exp((scores - global_max) / epsilon))  # [K, B_local]
  num_prototypes = tf.cast(tf.shape(q)[0], tf.float32)
  # One collective for the total mass and the global sample count.
  totals = all_reduce_sum(tf.stack([tf.reduce_sum(q), tf.cast(tf.shape(q)[1], tf.float32)]))
  q /= totals[0]
  num_samples = totals[1]
  for _ in range(iterations):
    q /= all_reduce_sum(tf.reduce_sum(q, axis=1, keepdims=True))
    q /= num_prototypes
    q /= tf.reduce_sum(q, axis=0, keepdims=True)
    q /= num_samples
  return tf.transpose(q * num_samples)


def swav_loss(scores_per_crop, crops_for_assign, temperature=0.1, epsilon=0.05, iterations=3,
              queue_scores=None):
  """SwAV's swapped prediction loss, as the training loop of the official main_swav.py.

  scores_per_crop: list of [B_local, K] prototype scores, one per crop (the large crops first).
  For each assigned crop c: q = sinkhorn(stop_gradient(scores_c)), with queue_scores[i] (the
  queue's [Q_local, K] scores for the i-th assigned crop, or None) prepended and only the batch's
  rows kept; then the crop's sub-loss is the mean over every other crop v of
  mean_b -sum_k q[b, k] * log_softmax(scores_v / temperature)[b, k].
  The loss is the mean of the sub-losses over the assigned crops. Whether the queue is in use yet
  (the official `use_the_queue`) and filling it are the task's job.
  """
  scores_per_crop = [_f32(s) for s in scores_per_crop]
  num_crops = len(scores_per_crop)
  if num_crops < 2:
    raise ValueError("swav_loss needs at least 2 crops, got %d" % num_crops)
  log_probs = [tf.nn.log_softmax(s / temperature, axis=1) for s in scores_per_crop]
  total = 0.0
  for i, crop in enumerate(crops_for_assign):
    out = tf.stop_gradient(scores_per_crop[crop])
    batch = tf.shape(out)[0]
    queued = None if queue_scores is None else queue_scores[i]
    if queued is not None:
      out = tf.concat([tf.stop_gradient(_f32(queued)), out], axis=0)
    q = sinkhorn(out, epsilon, iterations)[-batch:]
    sub = 0.0
    for v in range(num_crops):
      if v != crop:
        sub += -tf.reduce_mean(tf.reduce_sum(q * log_probs[v], axis=1))
    total += sub / (num_crops - 1)
  return total / len(crops_for_assign)
