"""The base of every backbone: `(output, end_points)` calls, global pooling, the logits conv."""

import keras
from keras import ops

from tfssl.models.layers import logits_conv


class Backbone(keras.Model):
  """A net whose `call(images, training)` returns `(output, end_points)`.

  Subclasses implement `features(images, training, end_points)`: it fills the end points up to the
  last feature map and returns that map. Here it is mean-pooled to `pre_logits` (float32, so that a
  mixed-precision net still hands losses float32) and, with `num_classes`, sent through a 1x1 conv
  with bias to `logits`. The output is `logits`, or `pre_logits` when `num_classes` is falsy.
  """

  def __init__(self, num_classes, feature_dim, feature_end_points, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes or None
    self.feature_dim = int(feature_dim)
    names = tuple(feature_end_points) + ("pre_logits",)
    self.end_point_names = names + (("logits",) if self.num_classes else ())
    self.logits_layer = logits_conv(self.num_classes) if self.num_classes else None

  def features(self, images, training, end_points):
    raise NotImplementedError

  def call(self, images, training=False):
    end_points = {}
    x = self.features(images, training, end_points)
    pooled = ops.mean(ops.cast(x, "float32"), axis=(1, 2), keepdims=True)
    end_points["pre_logits"] = ops.squeeze(pooled, axis=(1, 2))
    if self.logits_layer is None:
      return end_points["pre_logits"], end_points
    logits = ops.squeeze(self.logits_layer(pooled), axis=(1, 2))
    end_points["logits"] = logits
    return logits, end_points

  def get_config(self):
    """What `get_net` built this net from (its `net_args`), so a saved `.keras` model rebuilds
    it; a backbone made otherwise has none and cannot be saved that way."""
    if getattr(self, "net_args", None) is None:
      raise NotImplementedError("%s was not built by tfssl.models.get_net, so it has no config to "
                                "save; save its weights instead" % self.name)
    return {"name": self.name, "net_args": dict(self.net_args)}

  @classmethod
  def from_config(cls, config):
    from tfssl.models.factory import get_net  # the factory imports every backbone module
    args = dict(config["net_args"])
    return get_net(args.pop("architecture"), args.pop("num_classes"), name=config.get("name"),
                   **args)

  def no_weight_decay_variables(self):
    """Kernels the original left without an L2 regulariser (RevNet's stem); empty by default."""
    return []
