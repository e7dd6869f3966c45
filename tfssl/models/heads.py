"""Heads the tasks put on top of a backbone's features. Each returns float32 outputs."""

import keras
from keras import ops

from tfssl.models.layers import BN_EPSILON, BN_MOMENTUM, batch_norm


def _float32(x):
  return ops.cast(x, "float32")


class PatchHead(keras.Model):
  """The jigsaw / relative-patch-location head ("AlexNet fc7-fc8" of the original's patch_utils.py).

  dense 4096 (trunc-normal 0.005, bias 0.1) -> BN (0.997, 1e-5) -> ReLU -> dropout 0.5 ->
  dense num_classes (trunc-normal 0.005, zero bias). Input [N, D] (concatenated patch embeddings).
  """

  def __init__(self, num_classes, hidden_dim=4096, dropout=0.5, global_bn=False, **kwargs):
    super().__init__(**kwargs)
    init = keras.initializers.TruncatedNormal(mean=0.0, stddev=0.005)
    self.fc7 = keras.layers.Dense(hidden_dim, kernel_initializer=init,
                                  bias_initializer=keras.initializers.Constant(0.1), name="fc7")
    self.bn = batch_norm(global_bn, momentum=0.997, epsilon=1e-5, name="bn")
    self.dropout = keras.layers.Dropout(dropout)
    self.fc8 = keras.layers.Dense(num_classes, kernel_initializer=init, bias_initializer="zeros",
                                  dtype="float32", name="fc8")

  def call(self, x, training=False):
    x = ops.relu(self.bn(self.fc7(x), training=training))
    x = self.dropout(x, training=training)
    return _float32(self.fc8(x))


@keras.saving.register_keras_serializable(package="tfssl")
class ProjectionHead(keras.Model):
  """SimCLR's projection head; returns `(output, hiddens)`.

  Middle layers: dense (RandomNormal 0.01, no bias) -> BN with center -> ReLU, `hidden_dim` wide
  (default: the input width, as SimCLR). Last layer: dense `out_dim` -> BN without center, no ReLU.
  `hiddens[0]` is the input and `hiddens[i]` the output of layer i, so SimCLR's
  `ft_proj_selector` indexes it directly. `num_layers=1` is SimCLR's `linear` mode; 0 is `none`.
  BN uses SimCLR's momentum 0.9 and eps 1e-5.
  """

  def __init__(self, num_layers=3, hidden_dim=None, out_dim=128, global_bn=False,
               bn_momentum=0.9, bn_epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    self.num_layers = num_layers
    self.hidden_dim = hidden_dim
    self.out_dim = out_dim
    self.global_bn = global_bn
    self.bn_args = dict(momentum=bn_momentum, epsilon=bn_epsilon)
    self._config = dict(num_layers=num_layers, hidden_dim=hidden_dim, out_dim=out_dim,
                        global_bn=bool(global_bn), bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.dense_layers = []
    self.norm_layers = []

  def build(self, input_shape):
    init = keras.initializers.RandomNormal(stddev=0.01)
    hidden = self.hidden_dim or input_shape[-1]
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      self.dense_layers.append(keras.layers.Dense(
          self.out_dim if last else hidden, use_bias=False, kernel_initializer=init,
          name="dense%d" % (i + 1)))
      self.norm_layers.append(batch_norm(self.global_bn, center=not last,
                                         name="bn%d" % (i + 1), **self.bn_args))

  def call(self, x, training=False):
    hiddens = [x]
    for i, (dense, norm) in enumerate(zip(self.dense_layers, self.norm_layers)):
      x = norm(dense(x), training=training)
      if i != self.num_layers - 1:
        x = ops.relu(x)
      hiddens.append(x)
    return _float32(x), hiddens

  def get_config(self):
    return dict(self._config, name=self.name)


@keras.saving.register_keras_serializable(package="tfssl")
class MLPHead(keras.Model):
  """dense -> BN -> ReLU -> dense: BYOL's projector and predictor, SwAV's projection.

  The BN takes the run's --bn_momentum / --bn_epsilon (the tasks pass them): Keras's defaults for
  BYOL's TF2 seed, torch's BatchNorm1d (0.9, 1e-5) in SwAV's ImageNet flagfile.
  """

  def __init__(self, hidden_dim, out_dim, global_bn=False, bn_momentum=BN_MOMENTUM,
               bn_epsilon=BN_EPSILON, **kwargs):
    super().__init__(**kwargs)
    self._config = dict(hidden_dim=int(hidden_dim), out_dim=int(out_dim), global_bn=bool(global_bn),
                        bn_momentum=float(bn_momentum), bn_epsilon=float(bn_epsilon))
    self.hidden = keras.layers.Dense(hidden_dim, name="hidden")
    self.bn = batch_norm(global_bn, momentum=bn_momentum, epsilon=bn_epsilon, name="bn")
    self.out = keras.layers.Dense(out_dim, dtype="float32", name="out")

  def call(self, x, training=False):
    return _float32(self.out(ops.relu(self.bn(self.hidden(x), training=training))))

  def get_config(self):
    return dict(self._config, name=self.name)


class LinearHead(keras.Model):
  """A dense layer with bias (glorot-uniform, the original linear evaluation's 1x1 conv init)."""

  def __init__(self, num_classes, kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.dense = keras.layers.Dense(num_classes, kernel_initializer=kernel_initializer,
                                    dtype="float32", name="dense")

  def call(self, x, training=False):
    return _float32(self.dense(x))
