"""What the contrastive tasks share: the backbone, the views, SimCLR's online linear probe, and an
export whose `representation` adds the projection (`proj_head_output`) to the backbone's end points.

`--lineareval_while_pretraining` (SimCLR's flag) trains a linear classifier on the stop-gradient
backbone features during pretraining, with the labels repeated once per view; it changes nothing in
the representation and gives a supervised accuracy (`sup_accuracy`) to watch in training and in
the trainer's evaluation. The contrastive tasks' `test_step` updates only these probe metrics:
their own losses need augmented views, which the evaluation pipeline does not make.
"""

import keras
import tensorflow as tf

from tfssl.models import get_net_for_task
from tfssl.models.heads import LinearHead
from tfssl.models.projected import ProjectedNet, project
from tfssl.tasks.base import Task
from tfssl.tasks.views import split_views


class ContrastiveTask(Task):
  """A Task with `self.backbone` (pre_logits output) and the optional linear probe."""

  @classmethod
  def needs_labels(cls, config):
    return "--lineareval_while_pretraining" if config.lineareval_while_pretraining else None

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self.backbone = get_net_for_task(config, None)
    self.probe = None
    if config.lineareval_while_pretraining and ctx.num_classes:
      # SimCLR's head_supervised: a dense layer with bias, RandomNormal(0.01) kernel.
      self.probe = LinearHead(ctx.num_classes, kernel_initializer=keras.initializers.RandomNormal(
          stddev=0.01), name="head_supervised")
    self.sup_loss = keras.metrics.Mean(name="sup_loss")
    self.sup_accuracy = keras.metrics.SparseCategoricalAccuracy(name="sup_accuracy")

  def build(self, input_shape=None):
    # The sub-networks build on call()'s first real batch (the trainer's tiny batch), not in a
    # symbolic trace by Keras, so build-time work such as BYOL's target copy sees real values.
    del input_shape
    self.built = True

  # How `proj_head_output` comes from the head (models/projected.py): each method says.
  PROJECTION = "output"

  def projection_head(self):
    """The layer `proj_head_output` comes from (the export and the .keras encoder save it)."""
    raise NotImplementedError

  def projection_output(self, h, training=False):
    """The export's `proj_head_output` end point from the backbone's pre_logits `h`."""
    return project(self.projection_head(), h, self.PROJECTION, training)

  def representation(self, images, training=False):
    h, end_points = self.backbone(images, training=training)
    end_points = dict(end_points)
    end_points["proj_head_output"] = self.projection_output(h, training=training)
    return end_points

  def representation_net(self):
    return ProjectedNet(self.backbone, self.projection_head(), self.PROJECTION)

  def not_adapted_variables(self):
    # SimCLR excludes head_supervised from LARS (exclude_from_weight_decay, which is also its
    # exclude_from_layer_adaptation) and adds the head's kernel L2 to the loss.
    return list(self.probe.trainable_variables) if self.probe is not None else []

  def probe_metrics(self):
    return [self.sup_loss, self.sup_accuracy] if self.probe is not None else []

  def probe_loss(self, features, labels, num_views):
    """Mean cross-entropy of the probe on stop_gradient(features) [V*B, D] (view-major rows);
    0 without a probe. Updates the probe metrics."""
    if self.probe is None:
      return tf.constant(0.0, tf.float32)
    logits = self.probe(tf.stop_gradient(features))
    labels = tf.tile(tf.cast(tf.reshape(labels, [-1]), tf.int32), [num_views])
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    self.sup_loss.update_state(loss)
    self.sup_accuracy.update_state(labels, logits)
    return loss

  def build_probe(self, features):
    if self.probe is not None:
      self.probe(tf.stop_gradient(features))

  @property
  def eval_metrics(self):
    # Eval batches hold one un-augmented view, so there is no contrastive loss to report: only
    # the probe's (an empty evaluation without --lineareval_while_pretraining; use kNN instead).
    return self.probe_metrics()

  def test_step(self, features):
    if self.probe is None:
      return self.logs(self.eval_metrics)
    images = split_views(features["image"])[0]
    pre_logits, _ = self.backbone(images, training=False)
    self.probe_loss(pre_logits, features["label"], 1)
    return self.logs(self.eval_metrics)
