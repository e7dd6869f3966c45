"""Rotation prediction (Gidaris et al. 2018), as the original's `self_supervision/rotation.py`.

The `rotate` preprocessing op already stacks the four rotations of each image, 0, 90, 180 and 270
degrees counter-clockwise (`np.rot90(image, k)`), into images [B, 4, H, W, C] with labels [B, 4] =
0..3. Every image therefore puts all four of its rotations into the same batch (no random single
rotation). The backbone's own logits layer (num_classes=4) is the head; the loss is the mean
softmax cross-entropy over the 4B rotated images, the metric their accuracy.
"""

import keras
import tensorflow as tf

from tfssl.tasks.base import Task
from tfssl.tasks.views import merge_views

NUM_ROTATIONS = 4


def flatten_rotations(images, labels):
  """[B, 4, H, W, C], [B, 4] -> [4B, H, W, C], [4B]; image b's rotations stay adjacent."""
  return merge_views(images), tf.reshape(tf.cast(labels, tf.int32), [-1])


class Rotation(Task):
  """4-way rotation classification on the backbone's logits."""

  VIEWS = NUM_ROTATIONS
  VIEWS_HINT = "end the chain with rotate (it stacks the four rotations and their labels)"

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self.backbone = self.make_backbone()
    self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

  def make_backbone(self):
    from tfssl.models import get_net_for_task
    return get_net_for_task(self.config, NUM_ROTATIONS)

  @property
  def metrics(self):
    return [self.loss_tracker, self.accuracy]

  def call(self, features, training=False):
    images, _ = flatten_rotations(features["image"], features["label"])
    logits, _ = self.backbone(images, training=training)
    return logits

  def forward(self, features, training):
    images, labels = flatten_rotations(features["image"], features["label"])
    logits, _ = self.backbone(images, training=training)
    logits = tf.cast(logits, tf.float32)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return loss, logits, labels

  def update_metrics(self, loss, logits, labels):
    self.loss_tracker.update_state(loss)
    self.accuracy.update_state(labels, logits)
