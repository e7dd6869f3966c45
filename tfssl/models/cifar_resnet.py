"""The small post-activation ResNets of the contrastive seeds (seed-methods 1.3, 2, 3).

- `cifar_resnet18`: BYOL-TF2 / SimCLR CIFAR ResNet-18: 3x3 stride-1 stem + BN + ReLU, no max-pool,
  [2, 2, 2, 2] basic blocks 64/128/256/512 (at ff=4), pre_logits 512.
- `cifar_resnet50`: MindSpore SimCLR's `resnet50(cifar_stem=True)`: the same stem with v1
  bottlenecks (stride on the 3x3), pre_logits 2048.
- `resnet18`: the ImageNet ResNet-18 (7x7/2 stem + BN + ReLU + 3x3/2 max-pool).

filters_factor scales widths as in the original ResNet50 (ff=4 is vanilla). BN and conv init follow
the NetStyle (by default the Keras BN defaults, as BYOL-TF2); strided convs use the original's
fixed padding, like the other backbones.
"""

import keras
from keras import ops

from tfssl.models.backbone import Backbone
from tfssl.models.layers import (FixedPaddingConv, FixedPaddingMaxPool, NetStyle, conv1x1,
                                 residual_stages)
from tfssl.models.resnet import BottleneckV1


class BasicBlock(keras.layers.Layer):
  """3x3/stride, BN, ReLU, 3x3, BN; add (1x1/stride + BN projection when needed); ReLU.

  The stride sits on the first conv (BYOL-TF2, SimCLR, torchvision). MindSpore AVA's BasicBlock
  put it on the second conv instead; the parameter count is the same, the sampling is not.
  """

  def __init__(self, filters, strides=1, project=False, style=NetStyle(), **kwargs):
    super().__init__(**kwargs)
    init = style.kernel_initializer
    self.conv1 = FixedPaddingConv(filters, 3, strides, init(), name="conv1")
    self.bn1 = style.bn("bn1")
    self.conv2 = FixedPaddingConv(filters, 3, 1, init(), name="conv2")
    self.bn2 = style.bn("bn2", residual_end=True)
    self.shortcut = conv1x1(filters, strides, "shortcut", init()) if project else None
    self.shortcut_bn = style.bn("shortcut_bn") if project else None

  def call(self, x, training=False):
    y = ops.relu(self.bn1(self.conv1(x), training=training))
    y = self.bn2(self.conv2(y), training=training)
    shortcut = x
    if self.shortcut is not None:
      shortcut = self.shortcut_bn(self.shortcut(x), training=training)
    return ops.relu(shortcut + y)


@keras.saving.register_keras_serializable(package="tfssl")
class SmallResNet(Backbone):
  """Post-activation ResNet with a CIFAR (3x3/1, no pool) or ImageNet (7x7/2 + pool) stem.

  `strides` are those of blocks 2..4. `root_conv_stride` applies to the ImageNet stem only: the
  CIFAR stem is stride 1 by definition. Being post-activation, the net always ends in a ReLU.
  """

  def __init__(self, num_layers=(2, 2, 2, 2), unit="basic", stem="cifar", num_classes=None,
               filters_factor=4, last_relu=True, root_conv_stride=2, strides=(2, 2, 2),
               style=NetStyle(), name="cifar_resnet18"):
    if not last_relu:
      raise ValueError("last_relu is always True (implicitly) in post-activation ResNets "
                       "such as %s." % name)
    if unit not in ("basic", "bottleneck") or stem not in ("cifar", "imagenet"):
      raise ValueError("unit must be basic|bottleneck and stem cifar|imagenet; got %r, %r"
                       % (unit, stem))
    if len(strides) != 3:
      raise ValueError("strides must give the strides of blocks 2..4, e.g. (2, 2, 2); got %r"
                       % (strides,))
    width = 16 * filters_factor
    out = width if unit == "basic" else 4 * width
    super().__init__(num_classes, feature_dim=out * 8,
                     feature_end_points=("after_root", "block1", "block2", "block3", "block4"),
                     name=name)
    init = style.kernel_initializer()
    if stem == "cifar":
      self.root_conv = FixedPaddingConv(width, 3, 1, init, name="root_conv")
      self.root_pool = None
    else:
      self.root_conv = FixedPaddingConv(width, 7, root_conv_stride, init, name="root_conv")
      self.root_pool = FixedPaddingMaxPool(3, 2, name="root_pool")
    self.root_bn = style.bn("root_bn")
    block_class = BasicBlock if unit == "basic" else BottleneckV1
    self.blocks = residual_stages(block_class, num_layers, strides, width, out, style)

  def features(self, images, training, end_points):
    x = ops.relu(self.root_bn(self.root_conv(images), training=training))
    if self.root_pool is not None:
      x = self.root_pool(x)
    end_points["after_root"] = x
    for index, block in enumerate(self.blocks):
      x = block(x, training=training)
      end_points["block%d" % (index + 1)] = x
    return x


def cifar_resnet18(**kwargs):
  kwargs.setdefault("name", "cifar_resnet18")
  return SmallResNet(num_layers=(2, 2, 2, 2), unit="basic", stem="cifar", **kwargs)


def cifar_resnet50(**kwargs):
  kwargs.setdefault("name", "cifar_resnet50")
  return SmallResNet(num_layers=(3, 4, 6, 3), unit="bottleneck", stem="cifar", **kwargs)


def resnet18(**kwargs):
  kwargs.setdefault("name", "resnet18")
  return SmallResNet(num_layers=(2, 2, 2, 2), unit="basic", stem="imagenet", **kwargs)
