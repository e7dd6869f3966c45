"""Jigsaw puzzles (Noroozi & Favaro 2016), as the original's `jigsaw.py`.

Each image arrives as its 3x3 tiles [B, 9, h, w, C] (see patch_common.py); the backbone embeds each
tile. For a permutation p of the set, an image's row is the concatenation
[emb(tile p[0]), emb(tile p[1]), ..., emb(tile p[8])] (slot k holds tile p[k]); the PatchHead
classifies the row among the P permutations of the set, with the permutation's index as label.

Training draws one random subset of `perm_subset_size` permutations per batch, shared by all images
(the original's "method 2"); each image gives one row per drawn permutation, labels the drawn
indices. With several replicas each draws its own subset for its share of the batch. Evaluation
uses all P permutations with labels range(P). Rows are image-major.

Drawing 8 of 100 classes per batch makes the start of training touchy: at full learning rate the
wide head chases the 8 classes drawn last and the loss climbs above ln(P). The original warmed up
for 5 epochs; keep a warm-up when changing the schedule.

The permutation set (`tfssl/tasks/permutations.py`) is tfssl's 100 greedy maximal-minimal-Hamming
permutations of 9 (minimum distance 6), which do not contain the identity, as the original's set did
not; `--permutations_file` loads another set (.npy, text, or the original's binary format).
"""

import tensorflow as tf

from tfssl.tasks import permutations as permutation_sets
from tfssl.tasks.patch_common import PatchTask, gather_and_concat, tiled_labels


def random_subset(num_perms, size):
  """`size` distinct permutation indices in random order (argsort of uniforms: XLA-friendly)."""
  return tf.argsort(tf.random.uniform([num_perms]))[:size]


class Jigsaw(PatchTask):
  """Classifies which permutation of the set reordered an image's tiles."""

  def __init__(self, config, ctx, **kwargs):
    perms = permutation_sets.load(config.permutations_file)
    if perms.shape[1] != config.splits_per_side ** 2:
      raise ValueError("the permutation set has %d tiles per permutation but --splits_per_side=%d "
                       "makes %d tiles" % (perms.shape[1], config.splits_per_side,
                                           config.splits_per_side ** 2))
    if not 1 <= config.perm_subset_size <= len(perms):
      raise ValueError("--perm_subset_size=%d must be in [1, %d], the size of the permutation set"
                       % (config.perm_subset_size, len(perms)))
    super().__init__(config, ctx, num_classes=len(perms), **kwargs)
    self.permutations = perms

  def permutation_ids(self, training):
    """The permutation indices used for this batch: a random subset in training, all in eval."""
    num_perms = len(self.permutations)
    if training:
      return random_subset(num_perms, self.config.perm_subset_size)
    return tf.range(num_perms, dtype=tf.int32)

  def combine(self, embeddings, training):
    ids = self.permutation_ids(training)
    perms = tf.gather(tf.constant(self.permutations), ids)
    return gather_and_concat(embeddings, perms), tiled_labels(ids, tf.shape(embeddings)[0])
