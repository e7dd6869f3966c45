"""Exemplar (Dosovitskiy et al. 2014) with the triplet loss, as the original's `exemplar.py`.

Preprocessing (`to_gray,crop_inception_preprocess_patches,standardization`) gives images
[B, N, H, W, C]: N = `num_of_inception_patches` independent inception crops of each image, after
one grayscale decision shared by all crops of that image. The backbone with num_classes=`embed_dim`
maps each crop to an embedding (its logits layer); crops of the same image are positives, all other
crops negatives, under the semi-hard triplet loss with `margin`.

Labels are the image index repeated N times (np.repeat), offset by replica_id * B so that they are
unique across replicas; the loss itself is computed per replica over its own crops, like the
original per TPU shard.

L2 normalisation, `--exemplar_norm_axis`: the original wrote `tf.nn.l2_normalize(logits, axis=0)`,
which normalises each embedding *dimension across the batch*, so the distances depend on the other
images in the batch and embeddings are not on the unit sphere. tfssl's default, axis 1, normalises
each embedding vector, the usual metric-learning choice; `--exemplar_norm_axis=0` reproduces the
original.

Metrics: the loss, and `accuracy`, a retrieval accuracy the original did not have: a crop counts as
correct when its nearest other crop in the batch (cosine similarity) comes from the same image.

Export: the backbone, whose default output is the (unnormalised) embedding.

Evaluation preprocessing: the original pretrained on per-crop standardized crops but its released
evaluation script fed [-1, 1] pixels. tfssl keeps the original evaluation config as it was
(flags/evaluation/rotation_or_exemplar.cfg); to evaluate on the inputs the network was trained on,
give linear_eval `--preprocessing=resize_small,crop,standardization`, as the fashion_mnist config
does for its own evaluation (`--knn_preprocessing=resize,standardization`).
"""

import keras
import tensorflow as tf

from tfssl.tasks.base import Task
from tfssl.tasks.views import merge_views


def exemplar_labels(batch_size, num_crops, offset=0):
  """np.repeat(range(batch_size), num_crops) + offset, int32."""
  return tf.repeat(tf.range(batch_size, dtype=tf.int32), num_crops) + tf.cast(offset, tf.int32)


def nearest_image_scores(embeddings, num_crops):
  """[B*N, D] -> [B*N, B]: per crop, the best cosine similarity to each image's *other* crops.

  The argmax is the image of the crop's nearest neighbour, so with labels repeat(range(B), N) it
  feeds SparseCategoricalAccuracy as a retrieval accuracy.
  """
  unit = tf.math.l2_normalize(tf.cast(embeddings, tf.float32), axis=1)
  sims = tf.matmul(unit, unit, transpose_b=True)
  n = tf.shape(sims)[0]
  sims = tf.where(tf.eye(n, dtype=tf.bool), tf.fill([n, n], -float("inf")), sims)
  return tf.reduce_max(tf.reshape(sims, [n, -1, num_crops]), axis=2)


class Exemplar(Task):
  """Semi-hard triplet loss on embeddings of N crops per image."""

  VIEWS_HINT = ("use crop_inception_preprocess_patches, which makes --num_of_inception_patches "
                "crops of each image")

  @classmethod
  def expected_views(cls, config):
    return config.num_of_inception_patches

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    if config.exemplar_norm_axis not in (0, 1):
      raise ValueError("--exemplar_norm_axis must be 1 (each embedding) or 0 (across the batch, as "
                       "the original), got %r" % (config.exemplar_norm_axis,))
    self.backbone = self.make_backbone()
    self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

  def make_backbone(self):
    from tfssl.models import get_net_for_task
    return get_net_for_task(self.config, self.config.embed_dim)

  @property
  def metrics(self):
    return [self.loss_tracker, self.accuracy]

  def call(self, features, training=False):
    embeddings, _ = self.backbone(merge_views(features["image"]), training=training)
    return embeddings

  def forward(self, features, training):
    from tfssl.losses import replica_id, triplet_semihard_loss
    images = features["image"]
    batch_size, num_crops = tf.shape(images)[0], tf.shape(images)[1]
    embeddings, _ = self.backbone(merge_views(images), training=training)
    embeddings = tf.cast(embeddings, tf.float32)
    labels = exemplar_labels(batch_size, num_crops, replica_id() * batch_size)
    normalized = tf.math.l2_normalize(embeddings, axis=self.config.exemplar_norm_axis)
    loss = triplet_semihard_loss(labels, normalized, margin=self.config.margin)
    return loss, embeddings, num_crops

  def update_metrics(self, loss, embeddings, num_crops):
    self.loss_tracker.update_state(loss)
    local_labels = exemplar_labels(tf.shape(embeddings)[0] // num_crops, num_crops)
    self.accuracy.update_state(local_labels, nearest_image_scores(embeddings, num_crops))
