"""How a task reads the views its preprocessing stacked: one owner for the two layouts.

The view-making ops (rotate, crop_patches, the contrastive augmentations, multi-crop) stack the
views of an example on axis 1: images [B, V, H, W, C]. A task either takes each view as a batch of
its own (`split_views`, view-major: the contrastive losses pair row b of view 0 with row b of
view 1) or runs all views through the network as one batch with an example's views adjacent
(`merge_views`, image-major: rotation's, exemplar's and the patch tasks' labels follow that order).
"""

import tensorflow as tf


def split_views(images):
  """images [B, V, H, W, C] -> V tensors [B, H, W, C]; a plain batch [B, H, W, C] is one view."""
  if images.shape.rank == 5:
    return [images[:, v] for v in range(images.shape[1])]
  return [images]


def merge_views(images):
  """[B, V, H, W, C] -> [B*V, H, W, C]; example b's views stay adjacent (image-major)."""
  shape = tf.shape(images)
  return tf.reshape(images, tf.concat([[-1], shape[2:]], axis=0))


# What Task.expected_views may return besides a count: one image per example, where the tiles of
# a patch model (crop_patches) still pass, as linear evaluation and fine-tuning of such a model read
# them; only augmented views (an op with a single-view eval counterpart) are refused.
ONE_IMAGE = "one image"


def check_chain_views(task_cls, task_name, config, chain=None):
  """ValueError (one line naming the op and the fix) when the chain does not make the views the
  task expects (`task_cls.expected_views(config)`; None: the task does not say)."""
  from tfssl.data import preprocess
  chain = config.preprocessing if chain is None else chain
  expected = task_cls.expected_views(config)
  if expected is None or not chain:
    return
  count, makers = preprocess.chain_views(chain, config)
  if expected == ONE_IMAGE:
    for name, views in makers:
      if views.eval_op:
        raise ValueError(
            "--preprocessing=%s: %s makes several augmented views of each image in training, and "
            "--task=%s trains on one view per image; use --preprocessing=%s" % (
                chain, name, task_name, views.eval_op))
    return
  if count != expected:
    made = ", ".join("%s (%d)" % (n, v.count(config)) for n, v in makers) or "no view-making op"
    raise ValueError("--preprocessing=%s makes %d view(s) per image (%s) and --task=%s expects %d: "
                     "%s" % (chain, count, made, task_name, expected, task_cls.VIEWS_HINT))
