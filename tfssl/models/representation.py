"""A trained representation as one callable, from an export or from a workdir's checkpoint.

What evaluation, the kNN command and the pictures read is "images -> end points dict, in
inference mode". It comes from an export (`export/<step>`, a SavedModel any process can load) or
from a checkpoint restored into the rebuilt task (the trainer does the rebuilding: it owns the
tasks). The checkpoint layout is defined here once, for the trainer that writes it and the loader
that reads it.
"""

import dataclasses
import os
from typing import Callable, Optional

import keras
import tensorflow as tf


def weights_checkpoint(model, **objects):
  """The checkpoint layout of a task: every weight, moving statistics included, as one ordered
  list in creation order, plus `objects` (the trainer's optimizer).

  One list rather than the object graph: Keras 3 layers held in Python lists are invisible to
  tf.train.Checkpoint's graph (it follows direct attributes only).
  """
  return tf.train.Checkpoint(weights=list(model.weights), **objects)


@keras.saving.register_keras_serializable(package="tfssl")
class Encoder(keras.Model):
  """images -> end points dict of a net that returns (output, end points): the Keras face of a
  task's representation (Task.encoder()), trainable with the net's own weights.

  Saves as `.keras` where its net does (tfssl's backbones and ProjectedNet); load it with
  `keras.saving.load_model` after `import tfssl.models`, which registers tfssl's classes."""

  def __init__(self, net, **kwargs):
    super().__init__(name=kwargs.pop("name", "encoder"), **kwargs)
    self.net = net

  def call(self, images, training=False):
    _, end_points = self.net(images, training=training)
    return dict(end_points)

  def get_config(self):
    return {"name": self.name, "net": keras.saving.serialize_keras_object(self.net)}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    return cls(keras.saving.deserialize_keras_object(config.pop("net")), **config)


@dataclasses.dataclass(frozen=True)
class Representation:
  fn: Callable  # images [B, H, W, 3] float32 -> end points dict (inference mode)
  source: str  # the export directory or the checkpoint path
  config: Optional[object] = None  # the training run's Config, for a checkpoint
  input_shape: Optional[list] = None  # [None, H, W, 3] an export was saved for (None: any size)


def newest_export(workdir):
  """<workdir>/export/<largest step> holding a complete SavedModel, or None."""
  root = os.path.join(workdir, "export")
  if not tf.io.gfile.isdir(root):
    return None
  steps = [int(d.rstrip("/")) for d in tf.io.gfile.listdir(root)
           if d.rstrip("/").isdigit()
           and tf.io.gfile.exists(os.path.join(root, d.rstrip("/"), "saved_model.pb"))]
  return os.path.join(root, str(max(steps))) if steps else None


def from_export(path) -> Representation:
  from tfssl.models.export import load_export
  export = load_export(path)
  return Representation(lambda images: export.representation(images, training=False), path,
                        input_shape=export.input_shape)


def from_checkpoint(task, path, config=None) -> Representation:
  """Restores every weight of the built `task` from the checkpoint at `path` (the optimizer's
  slots are not needed); a weight the checkpoint lacks is an error, not a silent random init."""
  weights_checkpoint(task).read(path).expect_partial().assert_existing_objects_matched()
  return Representation(lambda images: task.representation(images, training=False), path, config)
