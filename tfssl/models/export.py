"""The export: a SavedModel that plays the role of the original's TF-Hub module.

The original exported a hub module with two graph variants (tags {"is_training"} and {}) and two
signatures: `default` (the net's output) and `representation` (the whole end-points dict). TF2 has
no graph variants, so the `training` switch becomes an argument of the saved functions:

  m = tf.saved_model.load(path)
  m(images, training=False)                 # the net's output
  m.representation(images, training=False)  # dict: after_root, block1..block4, pre_logits, logits
  m.signatures["default"](image=images)     # inference signatures, for serving tools
  m.signatures["representation"](image=images)

Keras users fine-tune the backbone through `ExportLayer(path, trainable=True)` (below), a Keras
layer over the export whose weights are named by their layer paths. keras.layers.TFSMLayer loads
the same endpoints (`default_inference` / `default_training`, `representation_inference` /
`representation_training`) but names each weight after TF's variable name, which ends in ":0";
any optimizer that keeps slots (Adam, momentum) then fails on the slot's scope name, so TFSMLayer
fine-tunes with plain SGD only.
"""

import json
import os
import shutil
import uuid

from absl import logging
import keras
import tensorflow as tf


class ExportModule(tf.Module):
  """Wraps a net returning (output, end_points) with the export's functions and signatures."""

  def __init__(self, net, input_shape=(None, None, None, 3), input_key="image", name="tfssl_export"):
    super().__init__(name=name)
    self.net = net
    # Saved as plain lists: a loaded SavedModel has no tf.Module `variables` property.
    self.variable_list = list(net.variables)
    self.trainable_variable_list = list(net.trainable_variables)
    self._input_key = input_key
    self._spec = tf.TensorSpec(list(input_shape), tf.float32, name=input_key)

    @tf.function
    def call(images, training=False):
      output, _ = self.net(images, training=training)
      return output

    @tf.function
    def representation(images, training=False):
      _, end_points = self.net(images, training=training)
      return dict(end_points)

    self.__call__ = call
    self.representation = representation
    # Fixed-argument entry points (one per training mode) for TFSMLayer and serving.
    self.default_inference = tf.function(lambda image: call(image, training=False),
                                         input_signature=[self._spec])
    self.default_training = tf.function(lambda image: call(image, training=True),
                                        input_signature=[self._spec])
    self.representation_inference = tf.function(lambda image: representation(image, training=False),
                                                input_signature=[self._spec])
    self.representation_training = tf.function(lambda image: representation(image, training=True),
                                               input_signature=[self._spec])

  def trace(self):
    """Traces both training modes so the saved object dispatches either one."""
    for training in (False, True):
      self.__call__.get_concrete_function(self._spec, training)
      self.representation.get_concrete_function(self._spec, training)

  def signatures(self):
    key = self._input_key
    default = self.default_inference.get_concrete_function()
    rep = self.representation_inference.get_concrete_function()

    @tf.function(input_signature=[self._spec])
    def default_sig(image):
      return {"default": default(image)}

    @tf.function(input_signature=[self._spec])
    def representation_sig(image):
      return rep(image)

    del key  # the input name comes from the TensorSpec
    return {"default": default_sig.get_concrete_function(),
            "representation": representation_sig.get_concrete_function(),
            "serving_default": default_sig.get_concrete_function()}


EVAL_VIEW_FILE = "tfssl_eval_view.json"


def save_export(module, export_dir, eval_view=None):
  """Saves atomically: into a temporary sibling, then renamed, so a kill never leaves half an export.

  `eval_view` ({"chain": ..., "flags": {...}}, tfssl.data.preprocess.eval_view) records the
  evaluation image the export expects, read back by `read_eval_view`.
  """
  export_dir = os.path.abspath(export_dir)
  parent = os.path.dirname(export_dir)
  tf.io.gfile.makedirs(parent)
  tmp = os.path.join(parent, ".tmp-%s-%s" % (os.path.basename(export_dir), uuid.uuid4().hex[:8]))
  module.trace()
  # tf.saved_model.save logs each function and asset at INFO, lines kilobytes long: not for a user.
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    tf.saved_model.save(module, tmp, signatures=module.signatures())
    if eval_view is not None:
      record = dict(eval_view, input_shape=list(module._spec.shape.as_list()))  # pylint: disable=protected-access
      with tf.io.gfile.GFile(os.path.join(tmp, EVAL_VIEW_FILE), "w") as f:
        f.write(json.dumps(record, indent=2, sort_keys=True))
    if tf.io.gfile.exists(export_dir):
      shutil.rmtree(export_dir)
    tf.io.gfile.rename(tmp, export_dir)
  finally:
    logging.set_verbosity(verbosity)
    if tf.io.gfile.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  return export_dir


class Untracked:
  """Holds a value outside Keras/TF tracking: a loaded export kept by a task is not part of the
  task's weights or checkpoints (linear evaluation freezes it; fine-tuning lists its variables
  itself)."""

  def __init__(self, value):
    self.value = value


def read_eval_view(export_dir):
  """The evaluation image an export recorded ({"chain", "flags", "input_shape"}), or None (an
  export written before tfssl recorded it, or by hand)."""
  path = os.path.join(export_dir, EVAL_VIEW_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.loads(f.read())


def run_in_replica(fn, *args):
  """fn(*args), or from a strategy's cross-replica context, replica 0's result of strategy.run.

  Loaded under a strategy, an export's variables are distributed and its functions run only in a
  replica context (TF fails "accessing a placeholder ... cross-replica context" otherwise); the
  trainer's first call and the kNN monitor come from the cross-replica context.
  """
  if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
    strategy = tf.distribute.get_strategy()
    return strategy.experimental_local_results(strategy.run(fn, args=args))[0]
  return fn(*args)


class LoadedExport:
  """A loaded export with the calls that linear_eval, finetune and kNN need."""

  def __init__(self, path):
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
      raise ValueError("--hub_module %s: no saved_model.pb there; point it at an export/<step> "
                       "directory written by `--run_eval`" % path)
    self.path = path
    # Loading warns once per Keras custom-gradient op ("unsaved custom gradients"); hundreds of
    # lines that say nothing to a user, so they are silenced for the duration of the load.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
      self.module = tf.saved_model.load(path)
    finally:
      logging.set_verbosity(verbosity)

  def __call__(self, images, training=False):
    return run_in_replica(lambda x: self.module(x, training=training), images)

  def representation(self, images, training=False):
    return run_in_replica(lambda x: self.module.representation(x, training=training), images)

  @property
  def input_shape(self):
    spec = self.module.signatures["default"].structured_input_signature[1]
    return list(next(iter(spec.values())).shape)

  @property
  def variables(self):
    return list(self.module.variable_list)

  @property
  def trainable_variables(self):
    return list(self.module.trainable_variable_list)


def load_export(path):
  return LoadedExport(path)


def _weight_name(paths):
  """A Keras weight name from a variable's object-graph paths: the net's own path (`net/...`, the
  layer path, e.g. blocks_0_members_0_bn1_gamma) where there is one, with "_" for "/" (Keras names
  have no slashes, and optimizer scopes no colons)."""
  chosen = next((p for p in paths if p.startswith("net/")), paths[0])
  if chosen.startswith("net/"):
    chosen = chosen[len("net/"):]
  # Keras keeps a layer's kernel as `_kernel`: the private underscore says nothing to a user.
  return "_".join(part.lstrip("_") for part in chosen.split("/"))


class ExportLayer(keras.layers.Layer):
  """A Keras layer over an export: `output="default"` gives the net's output (pre_logits or
  logits), `output="representation"` the end-points dict. Trainable with any Keras optimizer;
  `training=True` runs the export's training graph (BatchNorm on batch statistics)."""

  def __init__(self, path, output="default", trainable=True, **kwargs):
    super().__init__(trainable=trainable, **kwargs)
    if output not in ("default", "representation"):
      raise ValueError("ExportLayer output=%r: use default or representation" % (output,))
    from tfssl.models.export_graph import variable_paths
    self.export_path = path  # (Layer.path is Keras's own)
    self.output_name = output
    self._export = Untracked(LoadedExport(path))
    module = self._export.value.module
    self._inference = getattr(module, output + "_inference")
    self._training = getattr(module, output + "_training")
    paths = variable_paths(module)
    for v in module.variable_list:
      # Shares the export's tf.Variable (as TFSMLayer does), under a name optimizers accept.
      weight = keras.Variable(initializer=v, trainable=v.trainable and trainable, dtype=v.dtype,
                              shape=v.shape, name=_weight_name(sorted(paths[v.ref()])))
      self._track_variable(weight)

  def call(self, inputs, training=False):
    return self._training(inputs) if training else self._inference(inputs)

  def get_config(self):
    # Not portable beyond this machine's path, as TFSMLayer's.
    return {**super().get_config(), "path": self.export_path, "output": self.output_name}
