"""VGG19 with BatchNorm as the original `models/vggnet.py` (google/revisiting-self-supervised).

Width w = 8*ff (ff=8 is vanilla VGG19). No dropout: BN takes its place, as in the original.
fc6 is a VALID conv whose kernel covers the whole remaining feature map (7x7 at 224 px). The
original read that size from the static graph; here it is read from the input at build time, so
any input of at least 32 px works and fc6 sees a 1x1 map at the size the net was built for.
"""

import keras
from keras import ops

from tfssl.models.backbone import Backbone
from tfssl.models.layers import NetStyle, Stage

# (number of 3x3 convs, width in units of w) per block.
_BLOCKS = ((2, 1), (2, 2), (4, 4), (4, 8), (4, 8))


class ConvBNReLU(keras.layers.Layer):
  """Bias-free conv, BN, ReLU. `kernel_size=None` spans the input's whole spatial extent (fc6)."""

  def __init__(self, filters, kernel_size, padding="same", style=NetStyle(), **kwargs):
    super().__init__(**kwargs)
    self.style = style
    self.filters = filters
    self.kernel_size = kernel_size
    self.padding = padding
    self.conv = None
    if kernel_size is not None:
      self.conv = self._make_conv(kernel_size)
    self.bn = style.bn("bn")

  def _make_conv(self, kernel_size):
    return keras.layers.Conv2D(self.filters, kernel_size, padding=self.padding, use_bias=False,
                               kernel_initializer=self.style.kernel_initializer(), name="conv")

  def build(self, input_shape):
    if self.conv is None:
      height, width = input_shape[1], input_shape[2]
      if height is None or width is None:
        raise ValueError("%s spans the remaining feature map, so the net must first be called on "
                         "images of a known size (got %r)." % (self.name, tuple(input_shape)))
      self.conv = self._make_conv((height, width))

  def call(self, x, training=False):
    return ops.relu(self.bn(self.conv(x), training=training))


@keras.saving.register_keras_serializable(package="tfssl")
class VGG19(Backbone):
  """VGG19-BN; end points block1..block5, fc6, pre_logits (= fc7) and logits."""

  def __init__(self, num_classes=None, filters_factor=8, style=NetStyle(), name="vgg19"):
    w = 8 * filters_factor
    fc_width = 512 * filters_factor
    super().__init__(num_classes, feature_dim=fc_width,
                     feature_end_points=("block1", "block2", "block3", "block4", "block5", "fc6"),
                     name=name)
    self.blocks = []
    for index, (count, mult) in enumerate(_BLOCKS):
      convs = [ConvBNReLU(mult * w, 3, style=style, name="conv%d" % (j + 1))
               for j in range(count)]
      self.blocks.append(Stage(convs, name="block%d" % (index + 1)))
    self.pool = keras.layers.MaxPooling2D(2, strides=2, padding="valid", name="pool")
    self.fc6 = ConvBNReLU(fc_width, None, padding="valid", style=style, name="fc6")
    self.fc7 = ConvBNReLU(fc_width, 1, padding="valid", style=style, name="fc7")

  def features(self, images, training, end_points):
    x = images
    for index, block in enumerate(self.blocks):
      if index > 0:
        x = self.pool(x)
      x = block(x, training=training)
      end_points["block%d" % (index + 1)] = x
    x = self.pool(x)
    if x.shape[1] == 0 or x.shape[2] == 0:
      raise ValueError("VGG19 needs inputs of at least 32x32 pixels (five 2x2 max-pools).")
    x = self.fc6(x, training=training)
    end_points["fc6"] = x
    # fc7 is the original's pre_logits; the base pools it (a no-op squeeze on the usual 1x1 map).
    return self.fc7(x, training=training)


def vgg19(**kwargs):
  return VGG19(**kwargs)
