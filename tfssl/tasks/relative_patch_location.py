"""Relative patch location (Doersch et al. 2015), as the original's `relative_patch_location.py`.

Each image arrives as its 3x3 tiles [B, 9, h, w, C] in row-major order (see patch_common.py). The
8 pairs (neighbour i, centre 4) for i in 0..8, i != 4, each give a row [emb(tile i), emb(tile 4)];
its label is the pair's index 0..7 (tile i's position around the centre, row-major, skipping the
centre). All 8 pairs of every image are used in training and evaluation; rows are image-major, so
the labels are tile(range(8), B).
"""

import numpy as np
import tensorflow as tf

from tfssl.tasks.patch_common import PatchTask, gather_and_concat, tiled_labels

GRID_TILES = 9
CENTRE = 4
PAIRS = np.array([(i, CENTRE) for i in range(GRID_TILES) if i != CENTRE], dtype=np.int32)


class RelativePatchLocation(PatchTask):
  """Classifies where a neighbouring tile lies relative to the centre tile."""

  def __init__(self, config, ctx, **kwargs):
    if config.splits_per_side != 3:
      raise ValueError("relative_patch_location needs a 3x3 grid (--splits_per_side=3), got "
                       "--splits_per_side=%s" % (config.splits_per_side,))
    super().__init__(config, ctx, num_classes=len(PAIRS), **kwargs)

  def combine(self, embeddings, training):
    rows = gather_and_concat(embeddings, PAIRS)
    return rows, tiled_labels(tf.range(len(PAIRS)), tf.shape(embeddings)[0])
