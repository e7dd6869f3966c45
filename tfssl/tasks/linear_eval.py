"""Linear evaluation of a frozen export, the original's linear_eval.py (google/revisiting-self-supervised).

- The export (`--hub_module`) is frozen: called with training=False (BatchNorm in inference mode)
  and none of its variables is trained.
- One head per end point, all trained at once: `linear` (multinomial logistic regression) or `mlp`
  (hidden 1000, ReLU, dropout 0.5; the original's mlp path was broken as released, tfssl's works).
- Taps above 9000 features are pooled (`--pool_mode`); patch models (jigsaw/RPL exports fed
  [N, 9, h, w, c] by the crop_patches preprocessing) combine patch features (`--combine_patches`).
- Loss: the sum over taps of the mean softmax cross-entropy; metrics top1/top5_accuracy_<tap>.
"""

import keras
import tensorflow as tf

from tfssl.evaluation import linear_probe
from tfssl.models.export import Untracked, load_export
from tfssl.tasks.base import Task
from tfssl.tasks.views import ONE_IMAGE

MLP_HIDDEN = 1000  # the original's intended `channels_hidden` default (the flag was never defined)
EVAL_MODELS = ("linear", "mlp")  # --eval_model


def _tap_names(export):
  outputs = export.module.signatures["representation"].structured_outputs
  return sorted(outputs.keys())


class LinearEval(Task):

  READS_EXPORT = True
  VIEWS = ONE_IMAGE
  NEEDS_LABELS = True

  def __init__(self, config, ctx, **kwargs):
    super().__init__(config, ctx, **kwargs)
    self._frozen = Untracked(load_export(config.hub_module))
    self.tap_names = tuple(_tap_names(self._frozen.value))
    self._tap_shapes = Untracked({})
    self.heads = {}
    self.top1, self.top5 = {}, {}
    k5 = min(5, ctx.num_classes)
    for name in self.tap_names:
      if config.eval_model == "mlp":
        head = keras.Sequential([keras.layers.Dense(MLP_HIDDEN, activation="relu"),
                                 keras.layers.Dropout(0.5), keras.layers.Dense(ctx.num_classes)],
                                name="head_" + name)
      else:
        head = keras.layers.Dense(ctx.num_classes, name="head_" + name)
      self.heads[name] = head
      self.top1[name] = keras.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1_accuracy_" + name)
      self.top5[name] = keras.metrics.SparseTopKCategoricalAccuracy(k=k5, name="top5_accuracy_" + name)

  @property
  def export(self):
    return self._frozen.value

  def features(self, images):
    """{tap: [N, D]} from the frozen export, pooled and (for patch models) combined."""
    cfg = self.config
    rep = lambda x: self.export.representation(x, training=False)  # noqa: E731
    if images.shape.rank == 5:
      taps = linear_probe.patch_taps(rep, images, cfg.pool_mode, cfg.combine_patches)
    else:
      taps = linear_probe.image_taps(rep, images, cfg.pool_mode)
    shapes = self._tap_shapes.value
    out = {}
    for name, t in taps.items():
      # The export's traced functions have unknown spatial sizes; the first (eager) call records
      # each tap's width so the heads get static shapes when traced.
      if name not in shapes and tf.executing_eagerly():
        shapes[name] = int(t.shape[-1])
      if name in shapes:
        t = tf.ensure_shape(t, [None, shapes[name]])
      out[name] = tf.stop_gradient(t)
    return out

  def call(self, features, training=False):
    feats = self.features(features["image"])
    return {name: tf.cast(self.heads[name](feats[name], training=training), tf.float32)
            for name in self.tap_names}

  def _loss_and_metrics(self, labels, logits):
    losses = []
    for name in self.tap_names:
      losses.append(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits[name])))
      self.top1[name].update_state(labels, logits[name])
      self.top5[name].update_state(labels, logits[name])
    return tf.add_n(losses)

  def train_step(self, features):
    variables = self.trainable_variables
    with tf.GradientTape() as tape:
      logits = self(features, training=True)
      ce = self._loss_and_metrics(features["label"], logits)
      loss = ce + self.weight_decay_loss(variables)
    self.minimize(tape, loss, variables)
    self.loss_tracker.update_state(ce)
    return self.logs()

  def test_step(self, features):
    logits = self(features, training=False)
    self.loss_tracker.update_state(self._loss_and_metrics(features["label"], logits))
    return self.logs(self.eval_metrics)

  def representation(self, images, training=False):
    out = dict(self.export.representation(images, training=False))
    if images.shape.rank == 4:
      logits = self({"image": images}, training=False)
      out.update({"logits_" + k: v for k, v in logits.items()})
    return out

  def export_module(self):
    from tfssl.models.export import ExportModule
    return ExportModule(_EvalNet(self), input_shape=self.export.input_shape)


class _EvalNet(tf.Module):
  """The export of a linear evaluation: the frozen module's end points plus logits_<tap> per head."""

  def __init__(self, task):
    super().__init__(name="linear_eval_net")
    self.module = task.export.module  # tracked, so its variables are saved with the heads
    self.heads = list(task.heads.values())
    self._holder = Untracked(task)

  def __call__(self, images, training=False):
    end_points = self._holder.value.representation(images, training=False)
    output = end_points.get("logits_pre_logits", end_points.get("pre_logits"))
    return output, end_points
