"""RevNet50 as the original `models/revnet.py` (google/revisiting-self-supervised).

Reversible units keep the channel count, so the stem conv already projects to 64*ff channels and
the stages double the width by zero-padding channels. As in the original, this is an ordinary graph:
activations are stored, nothing is recomputed in the backward pass.
"""

import keras
from keras import ops

from tfssl.models.backbone import Backbone
from tfssl.models.layers import FixedPaddingConv, FixedPaddingMaxPool, NetStyle, Stage
from tfssl.models.resnet import BottleneckV2


class ReversibleUnit(keras.layers.Layer):
  """Splits channels into (x1, x2) and returns concat([x2, x1 + F(x2)]).

  F is a pre-activation bottleneck without shortcut and with C/2 outputs (inner width C/8).
  """

  def __init__(self, channels, style=NetStyle(), **kwargs):
    super().__init__(**kwargs)
    self.residual = BottleneckV2(channels // 2, no_shortcut=True, style=style,
                                 name="residual")

  def call(self, x, training=False):
    x1, x2 = ops.split(x, 2, axis=-1)
    y1 = x1 + self.residual(x2, training=training)
    return ops.concatenate([x2, y1], axis=-1)


class PoolAndDoubleChannels(keras.layers.Layer):
  """Average-pools by `stride` (SAME) and zero-pads C/2 channels on each side."""

  def __init__(self, stride, **kwargs):
    super().__init__(**kwargs)
    self.pool = None
    if stride > 1:
      self.pool = keras.layers.AveragePooling2D(stride, strides=stride, padding="same", name="pool")

  def call(self, x):
    if self.pool is not None:
      x = self.pool(x)
    half = x.shape[-1] // 2
    return ops.pad(x, [[0, 0], [0, 0], [0, 0], [half, half]])


@keras.saving.register_keras_serializable(package="tfssl")
class RevNet(Backbone):
  """RevNet with the original's options; `mode` does not exist here (the original ignored it)."""

  def __init__(self, num_layers=(3, 4, 6, 3), num_classes=None, filters_factor=4, last_relu=True,
               root_conv_stride=2, strides=(2, 2, 2), style=NetStyle(), name="revnet50"):
    if len(strides) != 3:
      raise ValueError("strides must give the strides of blocks 2..4, e.g. (2, 2, 2); got %r"
                       % (strides,))
    channels = 64 * filters_factor
    super().__init__(num_classes, feature_dim=channels * 8,
                     feature_end_points=("after_root", "block1", "block2", "block3", "block4"),
                     name=name)
    self.last_relu = last_relu
    # A random projection to the reversible width: no BN, no ReLU, no weight decay in the original.
    self.root_conv = FixedPaddingConv(channels, 7, root_conv_stride, style.kernel_initializer(),
                                      name="root_conv")
    self.root_pool = FixedPaddingMaxPool(3, 2, name="root_pool")
    self.transitions = [PoolAndDoubleChannels(s, name="double%d" % (i + 2))
                        for i, s in enumerate(strides)]
    self.blocks = []
    for index, count in enumerate(num_layers):
      units = [ReversibleUnit(channels, style=style, name="unit%d" % (j + 1))
               for j in range(count)]
      self.blocks.append(Stage(units, name="block%d" % (index + 1)))
      channels *= 2
    self.final_bn = style.bn("final_bn")

  def features(self, images, training, end_points):
    x = self.root_pool(self.root_conv(images))
    end_points["after_root"] = x
    for index, block in enumerate(self.blocks):
      if index > 0:
        x = self.transitions[index - 1](x)
      x = block(x, training=training)
      end_points["block%d" % (index + 1)] = x
    x = self.final_bn(x, training=training)
    if self.last_relu:
      x = ops.relu(x)
    return x

  def no_weight_decay_variables(self):
    return [self.root_conv.conv.kernel]


def revnet50(**kwargs):
  return RevNet(num_layers=(3, 4, 6, 3), **kwargs)
