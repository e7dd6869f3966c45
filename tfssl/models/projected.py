"""A backbone with its projection head as one net: what a contrastive method exports and saves.

`ProjectedNet(backbone, head, projection)` returns the backbone's `(pre_logits, end points)` with
`proj_head_output` added: the head on pre_logits, in the method's form (PROJECTIONS):

  output  head(h)                        BYOL's projector
  first   head(h)[0]                     SimCLR's ProjectionHead, which also returns its hiddens
  l2      l2_normalize(head(h))          SwAV's projection, AVA's head

The task's `projection_output` and this net compute it through `project`, the one owner. The net
saves as `.keras` (get_config names the backbone, the head and the form), and the SavedModel
export keeps its object graph (`backbone`, `heads`).
"""

import keras
import tensorflow as tf

PROJECTIONS = ("output", "first", "l2")


def project(head, h, projection, training=False):
  """`proj_head_output` of pre_logits `h` through `head` in the form `projection`."""
  if projection not in PROJECTIONS:
    raise ValueError("unknown projection form %r: use one of %s" % (projection, PROJECTIONS))
  z = head(h, training=training)
  if projection == "first":
    return z[0]
  return tf.math.l2_normalize(z, axis=1) if projection == "l2" else z


@keras.saving.register_keras_serializable(package="tfssl")
class ProjectedNet(keras.Model):

  def __init__(self, backbone, head, projection="output", **kwargs):
    super().__init__(name=kwargs.pop("name", backbone.name), **kwargs)
    if projection not in PROJECTIONS:
      raise ValueError("unknown projection form %r: use one of %s" % (projection, PROJECTIONS))
    self.backbone = backbone
    self.heads = [head]  # a list, as exports before this class were saved with
    self.projection = projection

  def call(self, images, training=False):
    h, end_points = self.backbone(images, training=training)
    end_points = dict(end_points)
    end_points["proj_head_output"] = project(self.heads[0], h, self.projection, training)
    return end_points["pre_logits"], end_points

  def get_config(self):
    return {"name": self.name, "projection": self.projection,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "head": keras.saving.serialize_keras_object(self.heads[0])}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
    head = keras.saving.deserialize_keras_object(config.pop("head"))
    return cls(backbone, head, **config)
