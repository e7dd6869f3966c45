"""What jigsaw and relative patch location share (the original's `patch_utils.py`).

Preprocessing (`...,crop_patches,standardization`) gives images [B, T, h, w, C]: the T = 3x3 tiles
of each image in row-major grid order. The backbone, in its patch variant (stem stride 1, stage
strides (2, 2, 1)) with num_classes=`embed_dim`, embeds every tile on its own; a subclass combines
the tile embeddings of each image into rows (its `combine`), and the PatchHead (the original's
fc 4096, BatchNorm, ReLU, dropout 0.5, fc) classifies the rows with softmax cross-entropy. Weight
decay: the backbone's kernels at `--weight_decay`, the head's at 5e-4, as in the original.

Export and `representation` use the backbone alone, on single tiles (`--serving_input_shape
None,64,64,3` in the original configs), so linear_eval with `--combine_patches` evaluates a patch
model as the original's jigsaw/RPL evaluation did. `representation` also accepts [B, T, h, w, C] and
then returns the end points of the B*T tiles.
"""

import keras
import tensorflow as tf

from tfssl.models.weight_decay import is_decayed
from tfssl.tasks.base import Task
from tfssl.tasks.views import merge_views

# The original head's L2 scale (`fully_connected` in patch_utils.py), independent of --weight_decay.
HEAD_WEIGHT_DECAY = 5e-4


def gather_and_concat(embeddings, index_sets):
  """Row (b, k) = concat_j embeddings[b, index_sets[k, j]].

  embeddings [B, T, D], index_sets [K, J] int -> [B*K, J*D], rows ordered image-major (b, then k).
  """
  index_sets = tf.convert_to_tensor(index_sets, tf.int32)
  gathered = tf.gather(embeddings, index_sets, axis=1)  # [B, K, J, D]
  # A static width keeps the head's input shape known when it builds.
  width = index_sets.shape[1] * embeddings.shape[-1]
  return tf.reshape(gathered, [-1, width])


def tiled_labels(class_ids, batch_size):
  """The label of row (b, k) is class_ids[k]: tile(class_ids, batch_size), int32."""
  return tf.tile(tf.cast(class_ids, tf.int32), [batch_size])


class PatchTask(Task):
  """Base of the patch tasks; subclasses pass the head's class count and implement `combine`."""

  VIEWS_HINT = "put crop_patches in the chain (it cuts the --splits_per_side grid of tiles)"

  @classmethod
  def expected_views(cls, config):
    return config.splits_per_side ** 2

  def __init__(self, config, ctx, num_classes, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self.backbone = self.make_backbone()
    self.head = self.make_head(num_classes)
    self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

  def make_backbone(self):
    from tfssl.models import get_net_for_task
    return get_net_for_task(self.config, self.config.embed_dim, patch=True)

  def make_head(self, num_classes):
    from tfssl.models.heads import PatchHead
    return PatchHead(num_classes, global_bn=self.config.global_bn, name="patch_head")

  def regularization_loss(self):
    """The backbone's decay at --weight_decay plus the head's at 5e-4, as the original fixed it."""
    backbone = self.weight_decay_loss(self.backbone.trainable_variables)
    if self.config.optimizer == "lars":
      return backbone
    kernels = [v for v in self.head.trainable_variables if is_decayed(v)]
    if not kernels:
      return backbone
    return backbone + HEAD_WEIGHT_DECAY * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])

  def combine(self, embeddings, training):
    """[B, T, D] tile embeddings -> (rows [N, K*D], labels [N])."""
    raise NotImplementedError

  @property
  def metrics(self):
    return [self.loss_tracker, self.accuracy]

  def embed_tiles(self, images, training):
    """[B, T, h, w, C] -> [B, T, D] backbone outputs (float32)."""
    outputs, _ = self.backbone(merge_views(images), training=training)
    outputs = tf.cast(outputs, tf.float32)
    return tf.reshape(outputs, [tf.shape(images)[0], tf.shape(images)[1], outputs.shape[-1]])

  def forward(self, features, training):
    rows, labels = self.combine(self.embed_tiles(features["image"], training), training)
    logits = tf.cast(self.head(rows, training=training), tf.float32)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return loss, logits, labels

  def call(self, features, training=False):
    return self.forward(features, training)[1]

  def update_metrics(self, loss, logits, labels):
    self.loss_tracker.update_state(loss)
    self.accuracy.update_state(labels, logits)

  def representation(self, images, training=False):
    if images.shape.rank == 5:
      images = merge_views(images)
    _, end_points = self.backbone(images, training=training)
    return end_points
