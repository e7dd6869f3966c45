"""The small base every task builds on: a keras.Model that the trainer drives.

Contract with the trainer (tfssl/trainer.py):
- `__init__(config, ctx)`: a Config and a TaskContext. Create sub-models and metrics here.
- `call(features, training=False)`: one forward pass over a batch *dict* as the input pipeline yields
  it (`{"image": ..., "label": ...}` after the task's preprocessing). Called once by the trainer on a
  tiny batch inside the strategy scope, so it must create every variable the task trains.
- `train_step(features)` runs per replica inside `strategy.run`: compute the per-replica mean loss,
  `self.minimize(tape, loss)`, update `self.metrics`, and return `self.logs()`, as Keras expects of
  a custom train_step: the same step serves `task.fit(...)` (tfssl.keras_api) and the trainer,
  which reads `metric.result()` for every metric in `self.metrics`.
- `test_step(features)` likewise updates metrics for evaluation on `val_split` and returns
  `self.logs(self.eval_metrics)` (default: all of `self.metrics`).
- `representation(images, training=False)`: the end-points dict that the export's `representation`
  signature returns; `export_module()` gives the tf.Module that the trainer saves as `export/<step>`.

Loss scaling: gradients are summed across replicas by the optimizer, so the per-replica mean loss
is divided by the number of replicas (equal local batches, as drop_remainder guarantees in training).
"""

import dataclasses

import keras
import tensorflow as tf

from tfssl.data import view_colour
from tfssl.models.weight_decay import is_decayed
from tfssl.tasks.step_guard import StepGuard, skip_guarded


@dataclasses.dataclass(frozen=True)
class TaskContext:
  """What a task needs to know about the run beyond its Config."""
  num_classes: int
  steps_per_epoch: int = 1
  total_steps: int = 1
  global_batch_size: int = 1


def num_replicas() -> int:
  return tf.distribute.get_strategy().num_replicas_in_sync


class Task(keras.Model):
  """Base class of every tfssl task. See the module docstring for the contract."""

  def __init__(self, config, ctx: TaskContext, **kwargs):
    super().__init__(name=kwargs.pop("name", config.task or "task"), **kwargs)
    self.config = config
    self.ctx = ctx
    self.loss_tracker = keras.metrics.Mean(name="loss")
    # --on_nonfinite: counts the steps whose loss or gradient is not finite (tasks/step_guard.py).
    self.step_guard = StepGuard(getattr(config, "on_nonfinite", "stop"),
                                getattr(config, "max_nonfinite_steps", 20))

  def __init_subclass__(cls, **kwargs):
    # Every train_step is guarded, the subclasses' own included (--on_nonfinite=skip).
    super().__init_subclass__(**kwargs)
    if "train_step" in cls.__dict__:
      cls.train_step = skip_guarded(cls.__dict__["train_step"])

  # How many views of each example the task's chain must stack (tasks/views.py checks it before a
  # run): a count, views.ONE_IMAGE, or None (not checked); `expected_views` where it depends on
  # the config. VIEWS_HINT says how to get them.
  VIEWS = None
  VIEWS_HINT = ""
  # Evaluation tasks train on a frozen or fine-tuned export (--hub_module), not a backbone of their own.
  READS_EXPORT = False
  # Whether the task reads the dataset's labels (NEEDS_LABELS, or `needs_labels(config)` where a
  # flag decides): unlabeled data (a folder of photos) is refused for those, in one line.
  NEEDS_LABELS = False

  @classmethod
  def needs_labels(cls, config):
    """None if the task trains without labels, else the flag or task that reads them."""
    del config
    return "--task" if cls.NEEDS_LABELS else None

  @classmethod
  def expected_views(cls, config):
    del config
    return cls.VIEWS

  # ---- what subclasses implement ----
  @classmethod
  def training_subset(cls, config, dataset_spec):
    """The records of config.train_split this task trains on (a tfssl.data.subsets.Subset with
    `.keep(record)` and `.num_examples`), or None for all of them (fine-tuning overrides this)."""
    del config, dataset_spec
    return None

  def call(self, features, training=False):
    raise NotImplementedError

  # The step of a task that is one loss over one forward pass (rotation, exemplar, the patch
  # tasks): it implements `forward` and `update_metrics`; others override both steps.
  def forward(self, features, training):
    """(loss, *outputs): the task's loss on one batch and what update_metrics reads."""
    raise NotImplementedError

  def regularization_loss(self):
    return self.weight_decay_loss()

  def update_metrics(self, loss, *outputs):
    del outputs
    self.loss_tracker.update_state(loss)

  @staticmethod
  def finish_views(features):
    """The batch's views with their photometric part applied, where the input left it to the
    train step (--augment_on_device; data/view_colour.py); else the batch as it is. Every
    train_step of a task that trains on multi-view chains starts with it."""
    return view_colour.finish_views(features, select="mask")

  @skip_guarded
  def train_step(self, features):
    features = self.finish_views(features)
    with tf.GradientTape() as tape:
      loss, *outputs = self.forward(features, training=True)
      loss = loss + self.regularization_loss()
    self.minimize(tape, loss)
    self.update_metrics(loss, *outputs)
    return self.logs()

  def fit(self, x=None, *args, **kwargs):
    """keras.Model.fit; a tf.data.Dataset (tfssl.training_dataset is shuffled by its records and
    seeds) is taken as it comes, without Keras's warning that shuffle=True is ignored for one."""
    if isinstance(x, tf.data.Dataset):
      kwargs.setdefault("shuffle", False)
    return super().fit(x, *args, **kwargs)

  def test_step(self, features):
    loss, *outputs = self.forward(features, training=False)
    self.update_metrics(loss, *outputs)
    return self.logs(self.eval_metrics)

  @property
  def eval_metrics(self):
    """The metrics test_step updates: what evaluation reports."""
    return self.metrics

  @property
  def metrics(self):
    # The task's own trackers only: Keras's compile() (the fit path) adds a "loss" tracker of its
    # own that a custom train_step never updates.
    own = getattr(self, "_loss_tracker", None)
    return [m for m in super().metrics if m is not own]

  def logs(self, metrics=None):
    """{name: result} of `metrics` (default: self.metrics), what train_step and test_step return."""
    out = {}
    for metric in self.metrics if metrics is None else metrics:
      result = metric.result()
      if isinstance(result, dict):
        out.update(result)
      else:
        out[metric.name] = result
    return out

  def representation(self, images, training=False):
    """End-points dict of the representation network (the export's `representation`)."""
    _, end_points = self.backbone(images, training=training)
    return end_points

  def representation_net(self):
    """The net (images -> (output, end points)) that the export saves; default: the backbone."""
    return self.backbone

  def export_module(self):
    """The tf.Module saved as the export: representation_net with the configured input shape."""
    from tfssl.models.export import ExportModule
    return ExportModule(self.representation_net(), input_shape=self.config.serving_shape)

  def encoder(self):
    """A keras.Model, images -> end points dict, sharing this task's weights: what a Keras user
    fine-tunes or calls after `fit` (the export's `representation`, without saving)."""
    from tfssl.models.representation import Encoder
    return Encoder(self.representation_net())

  # ---- helpers for subclasses ----
  def weight_decay_loss(self, variables=None):
    """The original's L2: weight_decay * sum(w^2) / 2 over kernels (not BN or biases).

    LARS and LARC decay inside the optimizer instead (SimCLR, SwAV); under LARS this is the L2 of
    the kernels LARS leaves alone (`not_adapted_variables`: SimCLR's head_supervised, whose decay
    SimCLR's add_weight_decay puts in the loss), under LARC 0.
    """
    wd = float(self.config.weight_decay or 0.0)
    optimizer = self.config.optimizer
    if wd == 0.0 or optimizer == "larc":
      return tf.constant(0.0, tf.float32)
    variables = self.trainable_variables if variables is None else variables
    if optimizer == "lars":
      left_alone = {id(v) for v in self.not_adapted_variables()}
      variables = [v for v in variables if id(v) in left_alone]
    exempt = {id(v) for v in self.no_weight_decay_variables()}
    terms = [tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables
             if is_decayed(v) and id(v) not in exempt]
    if not terms:
      return tf.constant(0.0, tf.float32)
    return wd * tf.add_n(terms)

  def step_state_variables(self):
    """What a train step changes besides the optimizer's update: the non-trainable float weights
    (BatchNorm statistics, a momentum target). A task with state outside its Keras weights adds it
    (SwAV's queue). --on_nonfinite=skip puts these back after a step that was not finite."""
    return [v for v in self.non_trainable_weights if tf.as_dtype(v.dtype).is_floating]

  def not_adapted_variables(self):
    """Variables that LARS leaves to plain momentum (no trust ratio, no decay inside): their L2 is
    in weight_decay_loss. None by default; the contrastive tasks' online probe (SimCLR)."""
    return []

  def no_weight_decay_variables(self):
    """Variables the nets exempt from weight decay beyond is_decayed's rule (RevNet's stem
    "random projection" had no regularizer in the original); LARS is told them too."""
    out = []
    for layer in self._flatten_layers(include_self=False):
      if hasattr(layer, "no_weight_decay_variables"):
        out.extend(layer.no_weight_decay_variables())
    return out

  def minimize(self, tape, loss, variables=None):
    """Applies the gradient of the per-replica mean `loss` (computed under `tape`).

    The loss is divided by the number of replicas (gradients are summed across replicas) and
    scaled for float16 loss scaling where the optimizer does that.
    """
    variables = self.trainable_variables if variables is None else variables
    with tape:
      scaled = tf.cast(loss, tf.float32) / float(num_replicas())
      scaled = self.optimizer.scale_loss(scaled)
    grads = tape.gradient(scaled, variables)
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    guard = self.step_guard
    if not guard.active:
      self.optimizer.apply_gradients(pairs)
      return grads
    # Under float16 loss scaling an overflowing gradient is the optimizer's to skip.
    loss_scaling = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
    finite = guard.step_is_finite(loss, grads, check_grads=not loss_scaling)
    guard.apply(self.optimizer, pairs, finite)
    return grads

  @property
  def global_step(self):
    """The optimizer's iteration counter (the trainer's global step)."""
    return self.optimizer.iterations
