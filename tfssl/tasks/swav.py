"""SwAV (Caron et al. 2020): swapped prediction of Sinkhorn codes over learned prototypes.

As facebookresearch/swav's main_swav.py: each group of same-sized crops (`multi_crop`: crops_<size>
[B, n, size, size, 3]) goes through the backbone as one batch; the features of all crops go
through the projector (MLPHead, --proj_hidden_dim default the backbone width, --proj_out_dim) and
are L2-normalised; the prototypes are a bias-free dense layer of --nmb_prototypes unit columns.
For each crop in --crops_for_assign the codes are Sinkhorn-Knopp (--epsilon,
--sinkhorn_iterations, sums all-reduced across replicas) of its scores, and every other crop
predicts them with a softmax at --temperature (losses.swav_loss).

Queue (--queue_length > 0): per replica, queue_length // replicas rows per assigned crop (the
length first trimmed to a multiple of the global batch, as SwAV), a variable that each replica
keeps for itself and that is not checkpointed. From epoch --epoch_queue_starts the newest embeddings are pushed
in; once full, its scores are prepended before Sinkhorn (only the batch's codes are kept).

Prototypes: for the first --freeze_prototypes_niters steps SwAV sets their gradient to None, so
the optimizer skips them altogether. Here the variable list of a step is fixed when it is traced,
so their gradient is zeroed and, after the optimizer's step, the weights *and the optimizer's
slots for them* (momentum, Adam's moments) are put back as they were: an optimizer that decays
inside (LARS, LARC) would otherwise move the weights and carry that decay in its momentum into the
first unfrozen step. After every step the prototypes are re-normalised (SwAV normalises them at
the start of each iteration, which is the same thing seen from the next step).
"""

import keras
import tensorflow as tf

from tfssl import losses, optimizers
from tfssl.data.multi_crop import crop_groups, num_crops
from tfssl.models.heads import MLPHead
from tfssl.tasks.base import num_replicas
from tfssl.tasks.contrastive import ContrastiveTask
from tfssl.tasks.views import split_views

DEFAULT_TEMPERATURE = 0.1


class UnitColumns(keras.initializers.Initializer):
  """Normal draws with each column (one prototype) scaled to unit length."""

  def __call__(self, shape, dtype=None):
    w = keras.initializers.RandomNormal(stddev=1.0)(shape, dtype=dtype or "float32")
    return tf.math.l2_normalize(w, axis=0)


class Prototypes(keras.layers.Layer):
  """scores = z @ W, W [D, K] without bias; `keep` scales W's gradient (0 freezes it)."""

  def __init__(self, num_prototypes, **kwargs):
    super().__init__(dtype="float32", **kwargs)
    self.num_prototypes = int(num_prototypes)

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(int(input_shape[-1]), self.num_prototypes),
                                  initializer=UnitColumns(), name="kernel")

  def call(self, z, keep=1.0):
    w = tf.convert_to_tensor(self.kernel)
    frozen = tf.stop_gradient(w)
    # Same value as w; its gradient is `keep` times w's.
    w = frozen + tf.cast(keep, w.dtype) * (w - frozen)
    return tf.matmul(tf.cast(z, w.dtype), w)


def crops_to_batch(crops):
  """[B, n, S, S, C] -> [n*B, S, S, C], crop-major (crop 0 of every image first)."""
  shape = tf.shape(crops)
  return tf.reshape(tf.transpose(crops, [1, 0, 2, 3, 4]), tf.concat([[-1], shape[2:]], axis=0))


class SwAV(ContrastiveTask):

  PROJECTION = "l2"
  VIEWS_HINT = "use multi_crop (--nmb_crops crops of each image)"

  @classmethod
  def expected_views(cls, config):
    return num_crops(config)

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self.groups = crop_groups(config)
    self.num_crops = num_crops(config)
    self.crops_for_assign = tuple(config.crops_for_assign_list or (0, 1))
    if self.num_crops < 2 or max(self.crops_for_assign) >= self.num_crops:
      raise ValueError("--crops_for_assign=%s must index the %d crops of --nmb_crops=%s (two at "
                       "least)" % (config.crops_for_assign, self.num_crops, config.nmb_crops))
    hidden = int(config.proj_hidden_dim or self.backbone.feature_dim)
    self.projector = MLPHead(hidden, int(config.proj_out_dim), global_bn=config.global_bn,
                             bn_momentum=config.bn_momentum, bn_epsilon=config.bn_epsilon,
                             name="projection_head")
    self.prototypes = Prototypes(config.nmb_prototypes, name="prototypes")
    self.temperature = float(config.temperature or DEFAULT_TEMPERATURE)
    self.queue_rows = self._queue_rows(config, ctx)
    if self.queue_rows:
      # A plain tf.Variable, outside the task's Keras weights: each replica's own scratch state,
      # not checkpointed (so a run may resume on another replica count); after a resume it refills
      # within queue_length / batch steps, where SwAV saves it beside the checkpoint.
      self.queue = tf.Variable(
          tf.zeros([len(self.crops_for_assign), self.queue_rows, int(config.proj_out_dim)]),
          trainable=False, name="queue", synchronization=tf.VariableSynchronization.ON_READ,
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  @staticmethod
  def _queue_rows(config, ctx):
    length = int(config.queue_length or 0)
    length -= length % max(1, ctx.global_batch_size)
    return length // num_replicas()

  @property
  def metrics(self):
    return [self.loss_tracker] + self.probe_metrics()

  # ---- forward ----
  def embed(self, features, training, keep=1.0):
    """(z [C*B, D] normalised, scores [C*B, K], the first group's backbone features, its crops)."""
    if any(key in features for key, _, _ in self.groups):
      batches = [crops_to_batch(features[key]) for key, _, _ in self.groups]
    else:
      batches = [split_views(features["image"])[0]]
    hs = [self.backbone(images, training=training)[0] for images in batches]
    z = tf.math.l2_normalize(self.projector(tf.concat(hs, axis=0), training=training), axis=1)
    first_count = sum(count for count, _, _ in self.groups[0][2]) if len(batches) == len(
        self.groups) else 1
    return z, self.prototypes(z, keep=keep), hs[0], first_count

  def call(self, features, training=False):
    z, scores, h, _ = self.embed(features, training)
    self.build_probe(h)
    return scores

  # ---- loss ----
  def swapped_loss(self, scores, z, batch, update_queue=True):
    per_crop = tf.split(scores, self.num_crops, axis=0)
    plain = losses.swav_loss(per_crop, self.crops_for_assign, self.temperature,
                             self.config.epsilon, self.config.sinkhorn_iterations)
    if not self.queue_rows:
      return plain
    queue = tf.convert_to_tensor(self.queue)
    w = tf.stop_gradient(tf.convert_to_tensor(self.prototypes.kernel))
    queued = losses.swav_loss(per_crop, self.crops_for_assign, self.temperature,
                              self.config.epsilon, self.config.sinkhorn_iterations,
                              queue_scores=[tf.matmul(queue[i], w)
                                            for i in range(len(self.crops_for_assign))])
    # The official `use_the_queue`: once the queue's oldest row holds an embedding.
    full = tf.reduce_any(tf.not_equal(queue[:, -1], 0.0))
    # Both are computed so every replica runs the same collectives (no cond around all-reduces).
    loss = tf.where(full, queued, plain)
    if update_queue:
      self._push_queue(queue, z, batch)
    return loss

  def step_state_variables(self):
    # The queue, too: a skipped step must not push its embeddings (--on_nonfinite=skip).
    return super().step_state_variables() + ([self.queue] if self.queue_rows else [])

  def _push_queue(self, queue, z, batch):
    epoch = self.global_step // max(1, self.ctx.steps_per_epoch)
    newest = [tf.stop_gradient(z[c * batch:(c + 1) * batch]) for c in self.crops_for_assign]
    shifted = tf.concat([tf.stack(newest), queue[:, :self.queue_rows - batch]], axis=1)
    started = epoch >= int(self.config.epoch_queue_starts)
    self.queue.assign(tf.where(started, shifted, queue))

  # ---- training ----
  def batch_loss(self, features, training=True, keep=1.0, update_queue=False):
    """(The swapped-prediction loss of the batch's crops, the first crop group's backbone
    features, the number of crops in that group)."""
    z, scores, h, first_count = self.embed(features, training, keep)
    batch = tf.shape(h)[0] // first_count
    return self.swapped_loss(scores, z, batch, update_queue), h, first_count

  def train_step(self, features):
    features = self.finish_views(features)
    step = self.global_step
    frozen = step < int(self.config.freeze_prototypes_niters)
    keep = 1.0 - tf.cast(frozen, tf.float32)
    kernel = self.prototypes.kernel
    slots = optimizers.slot_variables(self.optimizer, kernel)
    before = [tf.identity(tf.convert_to_tensor(v)) for v in [kernel] + slots]
    with tf.GradientTape() as tape:
      swav, h, first_count = self.batch_loss(features, True, keep, update_queue=True)
      sup = self.probe_loss(h, features["label"], first_count)
      loss = swav + sup + self.weight_decay_loss()
    self.minimize(tape, loss)
    after = tf.math.l2_normalize(tf.convert_to_tensor(kernel), axis=0)
    # Every replica computes the same values, so each may write its own copy.
    kernel.assign(tf.where(frozen, before[0], after))
    for slot, held in zip(slots, before[1:]):
      slot.assign(tf.where(frozen, held, tf.convert_to_tensor(slot)))
    self.loss_tracker.update_state(swav)
    return self.logs()

  def projection_head(self):
    return self.projector
