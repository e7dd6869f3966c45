"""SimCLR (Chen et al. 2020), as google-research/simclr's tf2/model.py and the MindSpore seed.

Both views (`simclr_augment`: images [B, 2, S, S, 3]) go through the backbone as one batch of 2B,
so BatchNorm sees both (synchronised across replicas with --global_bn), then through the
projection head (--proj_head_mode none | linear | nonlinear with --num_proj_layers, BN as SimCLR)
to --proj_out_dim. NT-Xent at --temperature gathers its negatives from every replica
(losses.nt_xent: the sum of both directions, as SimCLR and the seed). The optional linear probe
(tasks/contrastive.py) adds its loss. Weight decay is the L2 term of Task.weight_decay_loss; under LARS
the optimizer decays the rest and that term is the probe's kernel L2 alone (SimCLR's
add_weight_decay), the probe being excluded from LARS.
"""

import keras
import tensorflow as tf

from tfssl import losses
from tfssl.models.heads import ProjectionHead
from tfssl.tasks.contrastive import ContrastiveTask
from tfssl.tasks.views import split_views

DEFAULT_TEMPERATURE = 0.1  # SimCLR's; the MindSpore seed's CIFAR runs use 0.5 (see flags/)
PROJ_HEAD_MODES = ("none", "linear", "nonlinear")


def projection_layers(config):
  modes = {"none": 0, "linear": 1, "nonlinear": int(config.num_proj_layers)}
  if config.proj_head_mode not in modes:
    raise ValueError("unknown --proj_head_mode %r: use one of %s"
                     % (config.proj_head_mode, ", ".join(PROJ_HEAD_MODES)))
  return modes[config.proj_head_mode]


class SimCLR(ContrastiveTask):

  PROJECTION = "first"
  VIEWS = 2
  VIEWS_HINT = "use simclr_augment or byol_augment (two augmented views)"

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self.projection = ProjectionHead(num_layers=projection_layers(config),
                                     hidden_dim=config.proj_hidden_dim, out_dim=config.proj_out_dim,
                                     global_bn=config.global_bn, name="head_contrastive")
    self.temperature = float(config.temperature or DEFAULT_TEMPERATURE)
    self.contrast_acc = keras.metrics.Mean(name="contrast_acc")

  @property
  def metrics(self):
    return [self.loss_tracker, self.contrast_acc] + self.probe_metrics()

  def call(self, features, training=False):
    """Projections [V*B, proj_out_dim] of every view (view-major rows); builds every variable."""
    images = tf.concat(split_views(features["image"]), axis=0)
    h, _ = self.backbone(images, training=training)
    z, _ = self.projection(h, training=training)
    self.build_probe(h)
    return z, h

  def batch_loss(self, features, training=True):
    """(NT-Xent of the batch's two views, backbone features, (logits_ab, labels))."""
    z, h = self(features, training=training)
    z1, z2 = tf.split(z, 2, axis=0)
    contrastive, logits_ab, labels = losses.nt_xent(z1, z2, self.temperature)
    return contrastive, h, (logits_ab, labels)

  def train_step(self, features):
    features = self.finish_views(features)
    with tf.GradientTape() as tape:
      contrastive, h, (logits_ab, labels) = self.batch_loss(features)
      sup = self.probe_loss(h, features["label"], 2)
      loss = contrastive + sup + self.weight_decay_loss()
    self.minimize(tape, loss)
    self.loss_tracker.update_state(contrastive)
    hits = tf.equal(tf.argmax(labels, 1), tf.argmax(logits_ab, 1))
    self.contrast_acc.update_state(tf.cast(hits, tf.float32))
    return self.logs()

  def projection_head(self):
    return self.projection
