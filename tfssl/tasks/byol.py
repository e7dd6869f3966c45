"""BYOL (Grill et al. 2020): an online network regresses a slowly moving target network.

Online: backbone -> projector -> predictor (MLPHead: dense, BN, ReLU, dense; widths
--proj_hidden_dim / --pred_hidden_dim, output --proj_out_dim). Target: backbone -> projector with
their own weights, copied from the online ones when built, never trained (non-trainable
variables, no gradient: the target's outputs are stop-gradient): the shared momentum copy of
models/momentum.py, which MoCo-style methods use too. After each step every target variable,
BatchNorm moving statistics included (as the seed's get/set_weights), moves to
target <- tau * target + (1 - tau) * online  with

  tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2    (--tau_schedule=cosine, the paper)
  tau = tau_base                                          (--tau_schedule=constant, the seed)

k the step being taken (0 first) and K the run's total steps. Each view goes through the networks
on its own (BN statistics per view, as the paper's and the seed's code) and the target runs in
training mode (batch statistics), as both do.

Loss: the paper's symmetric sum  mean_b[2 - 2 cos(p1, z2')] + mean_b[2 - 2 cos(p2, z1')]; the
seed's TF2 code averages the two directions instead (half this value, the same gradient direction).
"""

import keras
import tensorflow as tf

from tfssl import losses
from tfssl.models import get_net_for_task
from tfssl.models.heads import MLPHead
from tfssl.models.momentum import MomentumCopy, ema_rate
from tfssl.tasks.contrastive import ContrastiveTask
from tfssl.tasks.views import split_views


class BYOL(ContrastiveTask):

  PROJECTION = "output"
  VIEWS = 2
  VIEWS_HINT = "use byol_augment or simclr_augment (two augmented views)"

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    ema_rate(0, 1, config.tau_base, config.tau_schedule)  # an unknown schedule fails here, not at step 1
    self.target_backbone = get_net_for_task(config, None)
    self.projector = self._mlp(config.proj_hidden_dim, "projector")
    self.target_projector = self._mlp(config.proj_hidden_dim, "target_projector")
    self.predictor = self._mlp(config.pred_hidden_dim or config.proj_hidden_dim, "predictor")
    self.tau_tracker = keras.metrics.Mean(name="tau")
    # The target: the shared momentum copy (models/momentum.py) of the backbone and projector.
    self.momentum = MomentumCopy([self.backbone, self.projector],
                                 [self.target_backbone, self.target_projector], name="BYOL")

  def _mlp(self, hidden, name):
    hidden = hidden or self.backbone.feature_dim
    return MLPHead(int(hidden), int(self.config.proj_out_dim), global_bn=self.config.global_bn,
                   bn_momentum=self.config.bn_momentum, bn_epsilon=self.config.bn_epsilon,
                   name=name)

  @property
  def metrics(self):
    return [self.loss_tracker, self.tau_tracker] + self.probe_metrics()

  # ---- networks ----
  def online(self, images, training):
    h, _ = self.backbone(images, training=training)
    return h, self.predictor(self.projector(h, training=training), training=training)

  def target(self, images, training):
    h, _ = self.target_backbone(images, training=training)
    return tf.stop_gradient(self.target_projector(h, training=training))

  def call(self, features, training=False):
    """Online predictions [V*B, out] of every view (view-major); builds every variable."""
    views = split_views(features["image"])
    hs, ps = zip(*[self.online(v, training) for v in views])
    for v in views:
      self.target(v, training)
    self.build_probe(hs[0])
    if not self.momentum.ready:
      self.momentum.initialize()
    return tf.concat(ps, axis=0)

  # ---- training ----
  def batch_loss(self, features, training=True):
    """(The symmetric regression loss of the batch's two views, online backbone features [2B, D]).

    The target's outputs are stop-gradient: no gradient reaches the target network.
    """
    x1, x2 = split_views(features["image"])
    z1, z2 = self.target(x1, training), self.target(x2, training)
    h1, p1 = self.online(x1, training)
    h2, p2 = self.online(x2, training)
    regression = (tf.reduce_mean(losses.byol_regression(p1, z2))
                  + tf.reduce_mean(losses.byol_regression(p2, z1)))
    return regression, tf.concat([h1, h2], 0)

  def train_step(self, features):
    features = self.finish_views(features)
    tau = ema_rate(self.global_step, self.ctx.total_steps, float(self.config.tau_base),
                   self.config.tau_schedule)
    with tf.GradientTape() as tape:
      regression, h = self.batch_loss(features)
      sup = self.probe_loss(h, features["label"], 2)
      loss = regression + sup + self.weight_decay_loss()
    self.minimize(tape, loss)
    self.momentum.update(tau)
    self.loss_tracker.update_state(regression)
    self.tau_tracker.update_state(tau)
    return self.logs()

  def projection_head(self):
    return self.projector
