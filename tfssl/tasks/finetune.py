"""Semi-supervised fine-tuning of an export on a labelled subset (SimCLR's train_mode=finetune).

- The export (`--hub_module`) is loaded with tf.saved_model.load and trained: its variables are in
  this task's checkpoints, and the training forward pass calls it with training=True, so BatchNorm
  normalises with batch statistics and updates its moving averages, as SimCLR's fine-tuning does.
- A new linear head on `pre_logits` (SimCLR's head_supervised: dense with bias, RandomNormal(0.01)
  kernel) gives the logits; the loss is the mean softmax cross-entropy plus Task.weight_decay_loss.
- The labelled subset (`--subset_percent` / `--subset_file`) is chosen by tfssl.data.subsets;
  `training_subset` hands it to the trainer, which restricts the train split's records to it.

`--fine_tune_after_block=k`, SimCLR's meaning: -1 trains everything, 0 everything after the stem,
1..3 what comes after block k, 4 the head only. Which block a variable belongs to comes from its
path in the export's object graph, by the nets' `blocks` convention (tfssl/models/export_graph.py).
Only variables that feed `pre_logits` train (found by walking the export's traced graph), which
leaves out the export's own logits layer and the heads of a linear-evaluation export.

Frozen parts:
- k = 4: the export runs with training=False (BatchNorm in inference mode, SimCLR's trainable=False)
  and its features are cut from the gradient.
- 0 <= k <= 3: the export has one training switch for the whole net, so the frozen blocks run with
  training=True too: their BatchNorm normalises with batch statistics (SimCLR's frozen blocks used
  their moving averages), and their moving averages are put back after every step, so no frozen
  variable changes.
"""

import keras
import tensorflow as tf

from tfssl.data import subsets
from tfssl.models.export import ExportModule, Untracked, load_export, run_in_replica
from tfssl.models.export_graph import AFTER_BLOCKS, block_of_paths, feeding_variables, variable_paths
from tfssl.models.heads import LinearHead
from tfssl.tasks.base import Task
from tfssl.tasks.views import ONE_IMAGE

HEAD_ONLY = 4


def check_after_block(k):
  if not -1 <= int(k) <= HEAD_ONLY:
    raise ValueError("--fine_tune_after_block=%s: use -1 (everything), 0 (after the stem), 1..3 "
                     "(after that block) or 4 (the head only)" % k)
  return int(k)


class Finetune(Task):

  READS_EXPORT = True
  VIEWS = ONE_IMAGE
  NEEDS_LABELS = True

  @classmethod
  def training_subset(cls, config, dataset_spec):
    """The labelled records of the train split (a tfssl.data.subsets.Subset), or None for all."""
    return subsets.training_subset(config, dataset_spec)

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    if not config.hub_module:
      raise ValueError("--task=finetune needs --hub_module=<export directory> (an export/<step> "
                       "folder written by --run_eval)")
    self.after_block = check_after_block(config.fine_tune_after_block)
    export = load_export(config.hub_module)
    self._export = Untracked(export)
    # Tracked, so the trained backbone (and its BatchNorm averages) is in the checkpoints.
    self.pretrained = export.module
    self.head = LinearHead(ctx.num_classes, kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.01), name="head_supervised")
    self.top1 = keras.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1_accuracy_logits")
    self.top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, ctx.num_classes),
                                                            name="top5_accuracy_logits")
    trained, frozen = self._choose_variables()
    self._trained = Untracked(trained)  # the export's variables that fine-tuning trains
    self._frozen_stats = Untracked(frozen)  # (variable, value) of frozen non-trainable variables
    self._feature_dim = Untracked(None)

  def build(self, input_shape):
    # Variables come from the export and the head's first call; nothing to build symbolically.
    self.built = True

  # ---- which export variables train ----
  def _captured_variables(self):
    seen = {}
    for fn in self.pretrained.representation.concrete_functions:
      for v in fn.variables:
        seen.setdefault(v.ref(), v)
    return list(seen.values())

  def _choose_variables(self):
    """Splits the export's variables into trained and frozen by block (module docstring)."""
    captured = self._captured_variables()
    paths = variable_paths(self.pretrained)
    blocks = {v.ref(): block_of_paths(paths.get(v.ref(), [])) for v in captured}
    k = self.after_block
    if k >= 1 and not any(1 <= b < AFTER_BLOCKS for b in blocks.values()):
      raise ValueError("--fine_tune_after_block=%d: the export %s has no variables under "
                       "`blocks/<i>`, so its blocks cannot be told apart; use -1 or 4"
                       % (k, self._export.value.path))
    in_place = lambda v: k == -1 or (k < HEAD_ONLY and blocks[v.ref()] > k)  # noqa: E731
    feeding = feeding_variables(self.pretrained.representation, "pre_logits")
    trained = [v for v in captured if v.trainable and in_place(v)
               and (feeding is None or v.ref() in feeding)]
    frozen = []
    if 0 <= k < HEAD_ONLY:
      frozen = [(v, tf.constant(v.numpy())) for v in captured
                if not v.trainable and not in_place(v)]
    return trained, frozen

  @property
  def backbone_variables(self):
    """The export's variables that fine-tuning trains."""
    return list(self._trained.value)

  @property
  def trainable_variables(self):
    return list(self.head.trainable_variables) + self.backbone_variables

  # ---- forward ----
  def features(self, images, training):
    frozen = self.after_block >= HEAD_ONLY
    end_points = self._export_end_points(images, bool(training) and not frozen)
    features = end_points["pre_logits"]
    # The loaded functions may not know the feature width; the first (eager) call records it.
    if self._feature_dim.value is None and tf.executing_eagerly():
      self._feature_dim.value = int(features.shape[-1])
    if self._feature_dim.value is not None:
      features = tf.ensure_shape(features, [None, self._feature_dim.value])
    if frozen:
      features = tf.stop_gradient(features)
    return features, end_points

  def _export_end_points(self, images, training):
    represent = self.pretrained.representation
    return run_in_replica(lambda x: represent(x, training=training), images)

  def call(self, features, training=False):
    pre_logits, _ = self.features(features["image"], training)
    return self.head(pre_logits, training=training)

  def _update(self, ce, labels, logits):
    self.loss_tracker.update_state(ce)
    self.top1.update_state(labels, logits)
    self.top5.update_state(labels, logits)

  def train_step(self, features):
    variables = self.trainable_variables
    labels = features["label"]
    with tf.GradientTape() as tape:
      logits = tf.cast(self(features, training=True), tf.float32)
      ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
      loss = ce + self.weight_decay_loss(variables)
    self.minimize(tape, loss, variables)
    self.restore_frozen_statistics()
    self._update(ce, labels, logits)
    return self.logs()

  def restore_frozen_statistics(self):
    """Puts back the frozen blocks' BatchNorm averages that the training-mode pass moved."""
    for variable, value in self._frozen_stats.value:
      variable.assign(value)

  def test_step(self, features):
    labels = features["label"]
    logits = tf.cast(self(features, training=False), tf.float32)
    self._update(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)),
                 labels, logits)
    return self.logs(self.eval_metrics)

  # ---- export ----
  def representation(self, images, training=False):
    pre_logits, end_points = self.features(images, training)
    end_points = dict(end_points)
    end_points["logits"] = self.head(pre_logits, training=training)
    return end_points

  def export_module(self):
    return ExportModule(_FinetunedNet(self.pretrained, self.head),
                        input_shape=self._export.value.input_shape)


class _FinetunedNet(tf.Module):
  """The fine-tuned export: the backbone's end points with `logits` from the new head."""

  def __init__(self, pretrained, head):
    super().__init__(name="finetuned_net")
    self.pretrained = pretrained
    self.head = head

  def __call__(self, images, training=False):
    end_points = dict(self.pretrained.representation(images, training=training))
    logits = self.head(end_points["pre_logits"], training=training)
    end_points["logits"] = logits
    return logits, end_points
