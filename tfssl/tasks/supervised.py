"""Supervised training: the ceiling the self-supervised representations are compared against.

As the original's supervised.py: the backbone's logits with num_classes outputs, mean softmax
cross-entropy plus the original's L2 weight decay, metrics top1/top5_accuracy_logits.
"""

import keras
import tensorflow as tf

from tfssl.models import get_net_for_task
from tfssl.tasks.base import Task


class Supervised(Task):

  VIEWS = 1
  NEEDS_LABELS = True
  VIEWS_HINT = "a single-image chain such as inception_preprocess"

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self.backbone = get_net_for_task(config, ctx.num_classes)
    self.top1 = keras.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1_accuracy_logits")
    self.top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, ctx.num_classes),
                                                            name="top5_accuracy_logits")

  def call(self, features, training=False):
    logits, _ = self.backbone(features["image"], training=training)
    return logits

  def _update(self, loss, labels, logits):
    self.loss_tracker.update_state(loss)
    self.top1.update_state(labels, logits)
    self.top5.update_state(labels, logits)

  def train_step(self, features):
    labels = features["label"]
    with tf.GradientTape() as tape:
      logits = tf.cast(self(features, training=True), tf.float32)
      ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
      loss = ce + self.weight_decay_loss()
    self.minimize(tape, loss)
    self._update(ce, labels, logits)
    return self.logs()

  def test_step(self, features):
    labels = features["label"]
    logits = tf.cast(self(features, training=False), tf.float32)
    ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    self._update(ce, labels, logits)
    return self.logs(self.eval_metrics)
