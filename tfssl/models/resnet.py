"""ResNet50 v1 and v2 as the original `models/resnet.py` (google/revisiting-self-supervised).

Widths: the root conv has 16*ff filters, block outputs are 64*ff, 128*ff, 256*ff, 512*ff with
bottleneck inner width out/4; ff=4 is the vanilla ResNet50 (pre_logits 2048).
Both versions put the stride on the 3x3 conv ("v1.5"): a strided 1x1 would skip 3 of every 4 pixels.
"""

import keras
from keras import ops

from tfssl.models.backbone import Backbone
from tfssl.models.layers import (FixedPaddingConv, FixedPaddingMaxPool, NetStyle, conv1x1,
                                 residual_stages)

MODES = ("v1", "v2")  # --mode: the original's pre- (v2) or post-activation (v1) units


class BottleneckV1(keras.layers.Layer):
  """Post-activation bottleneck: 1x1, 3x3/stride, 1x1, each followed by BN; add; ReLU."""

  def __init__(self, filters, strides=1, project=False, style=NetStyle(), **kwargs):
    super().__init__(**kwargs)
    init = style.kernel_initializer
    self.shortcut = conv1x1(filters, strides, "shortcut", init()) if project else None
    self.shortcut_bn = style.bn("shortcut_bn") if project else None
    self.conv1 = conv1x1(filters // 4, name="conv1", kernel_initializer=init())
    self.bn1 = style.bn("bn1")
    self.conv2 = FixedPaddingConv(filters // 4, 3, strides, init(), name="conv2")
    self.bn2 = style.bn("bn2")
    self.conv3 = conv1x1(filters, name="conv3", kernel_initializer=init())
    self.bn3 = style.bn("bn3", residual_end=True)

  def call(self, x, training=False):
    shortcut = x
    if self.shortcut is not None:
      shortcut = self.shortcut_bn(self.shortcut(x), training=training)
    y = ops.relu(self.bn1(self.conv1(x), training=training))
    y = ops.relu(self.bn2(self.conv2(y), training=training))
    y = self.bn3(self.conv3(y), training=training)
    return ops.relu(shortcut + y)


class BottleneckV2(keras.layers.Layer):
  """Pre-activation bottleneck: BN ReLU, then 1x1, BN ReLU, 3x3/stride, BN ReLU, 1x1; add, no ReLU.

  The projection shortcut reads the *pre-activated* input, as the original. `no_shortcut` returns
  the residual branch alone (RevNet's F).
  """

  def __init__(self, filters, strides=1, project=False, no_shortcut=False, style=NetStyle(),
               **kwargs):
    super().__init__(**kwargs)
    init = style.kernel_initializer
    self.no_shortcut = no_shortcut
    self.preact_bn = style.bn("preact_bn")
    self.shortcut = conv1x1(filters, strides, "shortcut", init()) if project else None
    self.conv1 = conv1x1(filters // 4, name="conv1", kernel_initializer=init())
    self.bn1 = style.bn("bn1")
    self.conv2 = FixedPaddingConv(filters // 4, 3, strides, init(), name="conv2")
    self.bn2 = style.bn("bn2")
    self.conv3 = conv1x1(filters, name="conv3", kernel_initializer=init())

  def call(self, x, training=False):
    preact = ops.relu(self.preact_bn(x, training=training))
    y = self.conv1(preact)
    y = self.conv2(ops.relu(self.bn1(y, training=training)))
    y = self.conv3(ops.relu(self.bn2(y, training=training)))
    if self.no_shortcut:
      return y
    shortcut = x if self.shortcut is None else self.shortcut(preact)
    return y + shortcut


@keras.saving.register_keras_serializable(package="tfssl")
class ResNet(Backbone):
  """ResNet v1 / v2 with the original's options; `num_layers=(3, 4, 6, 3)` is ResNet50."""

  def __init__(self, num_layers=(3, 4, 6, 3), num_classes=None, filters_factor=4, last_relu=True,
               mode="v2", root_conv_stride=2, strides=(2, 2, 2), style=NetStyle(), name="resnet50"):
    if mode not in MODES:
      raise ValueError("Unknown ResNet mode %r: use 'v1' or 'v2'." % (mode,))
    if mode == "v1" and not last_relu:
      raise ValueError("last_relu is always True (implicitly) in the v1 mode.")
    if len(strides) != 3:
      raise ValueError("strides must give the strides of blocks 2..4, e.g. (2, 2, 2); got %r"
                       % (strides,))
    width = 16 * filters_factor
    out = 4 * width
    super().__init__(num_classes, feature_dim=out * 8,
                     feature_end_points=("after_root", "block1", "block2", "block3", "block4"),
                     name=name)
    self.mode = mode
    self.last_relu = last_relu
    self.root_conv = FixedPaddingConv(width, 7, root_conv_stride, style.kernel_initializer(),
                                      name="root_conv")
    # v2 leaves the stem un-normalised: the first unit's pre-activation BN does that job.
    self.root_bn = style.bn("root_bn") if mode == "v1" else None
    self.root_pool = FixedPaddingMaxPool(3, 2, name="root_pool")
    unit = BottleneckV1 if mode == "v1" else BottleneckV2
    self.blocks = residual_stages(unit, num_layers, strides, width, out, style)
    self.final_bn = style.bn("final_bn") if mode == "v2" else None

  def features(self, images, training, end_points):
    x = self.root_conv(images)
    if self.root_bn is not None:
      x = ops.relu(self.root_bn(x, training=training))
    x = self.root_pool(x)
    end_points["after_root"] = x
    for index, block in enumerate(self.blocks):
      x = block(x, training=training)
      end_points["block%d" % (index + 1)] = x
    if self.final_bn is not None:
      x = self.final_bn(x, training=training)
      if self.last_relu:
        x = ops.relu(x)
    return x


def resnet50(**kwargs):
  return ResNet(num_layers=(3, 4, 6, 3), **kwargs)
