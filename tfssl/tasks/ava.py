"""AVA_cifar (the AAG method, Tu et al. 2020): two standard views and a RandAugment auxiliary view.

As the MindSpore AVA seed's train step: `ava_views` stacks (x, y, aux) as images [B, 3, S, S, 3];
the three go through the network as ONE batch of 3B (so BatchNorm statistics are shared across
views), then a Dense(--proj_out_dim, 128) with bias and L2 normalisation, and the GNT-Xent loss
(losses.gnt_xent: the mutual x/y term without the positive in its denominator, plus the four
auxiliary terms) at --temperature (the seed's sigma, 0.1), negatives gathered from every replica.
The seed trains with SGD 0.03, cosine, weight decay 5e-4 (flags/ava/cifar10.cfg).

The seed's kNN evaluation reads the L2-normalised 128-d embedding, which `representation()` and the
export add as `proj_head_output` (--knn_end_point=proj_head_output reproduces it).
"""

import keras
import tensorflow as tf

from tfssl import losses
from tfssl.tasks.contrastive import ContrastiveTask
from tfssl.tasks.views import split_views

DEFAULT_TEMPERATURE = 0.1


class AVA(ContrastiveTask):

  PROJECTION = "l2"
  VIEWS = 3
  VIEWS_HINT = "use ava_views (the anchor, the positive and the RandAugment view)"

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self.head = keras.layers.Dense(int(config.proj_out_dim), dtype="float32", name="head")
    self.temperature = float(config.temperature or DEFAULT_TEMPERATURE)

  @property
  def metrics(self):
    return [self.loss_tracker] + self.probe_metrics()

  def embed(self, images, training):
    h, _ = self.backbone(images, training=training)
    return h, tf.math.l2_normalize(self.head(h), axis=1)

  def call(self, features, training=False):
    """Embeddings [V*B, proj_out_dim] of every view (view-major); builds every variable."""
    h, z = self.embed(tf.concat(split_views(features["image"]), axis=0), training)
    self.build_probe(h)
    return z

  def batch_loss(self, features, training=True):
    """(GNT-Xent of the batch's three views, backbone features of the two standard views [2B, D])."""
    views = split_views(features["image"])
    if len(views) != 3:
      raise ValueError("ava needs the `ava_views` preprocessing (images [B, 3, H, W, C]); got %d "
                       "view(s)" % len(views))
    h, z = self.embed(tf.concat(views, axis=0), training)
    x, y, aux = tf.split(z, 3, axis=0)
    # The probe learns from the two standard views only.
    return losses.gnt_xent(x, y, aux, self.temperature), h[:2 * tf.shape(x)[0]]

  def train_step(self, features):
    with tf.GradientTape() as tape:
      gnt, h = self.batch_loss(features)
      sup = self.probe_loss(h, features["label"], 2)
      loss = gnt + sup + self.weight_decay_loss()
    self.minimize(tape, loss)
    self.loss_tracker.update_state(gnt)
    return self.logs()

  def projection_head(self):
    return self.head
