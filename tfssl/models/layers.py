"""Building blocks shared by the backbones: the BN factory, the original's padding, the logits conv.

Padding: the original pads explicitly ("fixed padding": (k-1)//2 before, the rest after) and then
runs a VALID conv or pool. For stride 1 that equals Keras 'same'; for stride 2 on an even input
'same' would pad (0, 1) instead of (k-1)//2 before, shifting every sampled window by one pixel, so
strided layers pad by hand.
"""

import dataclasses

import keras
from keras import ops

# TF1 `tf.layers.batch_normalization` defaults, which the original used everywhere in the backbones.
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3

# Conv kernel initialisers of the originals: the TF1 default (Revisiting), SimCLR's
# VarianceScaling() (scale 1, fan_in, truncated normal) and torchvision's kaiming_normal_(fan_out,
# relu) that SwAV's ResNet uses (scale 2, fan_out, untruncated normal).
KERNEL_INITS = {
    "glorot_uniform": lambda: keras.initializers.GlorotUniform(),
    "variance_scaling": lambda: keras.initializers.VarianceScaling(
        scale=1.0, mode="fan_in", distribution="truncated_normal"),
    "kaiming_fan_out": lambda: keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"),
}


def batch_norm(global_bn=False, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=None, **kwargs):
  """The one place BatchNorm is made; `global_bn` syncs batch statistics across replicas."""
  return keras.layers.BatchNormalization(
      momentum=momentum, epsilon=epsilon, synchronized=bool(global_bn), name=name, **kwargs)


@dataclasses.dataclass(frozen=True)
class NetStyle:
  """How a backbone makes its BatchNorms and conv kernels: where the originals differ.

  Revisiting (TF1): momentum 0.99, epsilon 1e-3, glorot-uniform convs. SimCLR: 0.9, 1e-5, the last
  BatchNorm of each residual branch starting at gamma 0 (`zero_init_residual`, its init_zero), and
  VarianceScaling convs. SwAV (torchvision): 0.9 (torch's 0.1), 1e-5, kaiming fan-out convs.
  """
  global_bn: bool = False
  bn_momentum: float = BN_MOMENTUM
  bn_epsilon: float = BN_EPSILON
  zero_init_residual: bool = False
  kernel_init: str = "glorot_uniform"

  def __post_init__(self):
    if self.kernel_init not in KERNEL_INITS:
      raise ValueError("unknown --conv_kernel_init=%s: use one of %s"
                       % (self.kernel_init, ", ".join(KERNEL_INITS)))

  def bn(self, name, residual_end=False, **kwargs):
    """A BatchNorm; `residual_end` marks the last one of a residual branch (gamma 0 with
    zero_init_residual, so each block starts as the identity)."""
    if residual_end and self.zero_init_residual:
      kwargs["gamma_initializer"] = "zeros"
    return batch_norm(self.global_bn, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                      name=name, **kwargs)

  def kernel_initializer(self):
    return KERNEL_INITS[self.kernel_init]()


def fixed_padding(x, kernel_size):
  """Zero-pads H and W as the original: (k-1)//2 before, the remainder after."""
  total = kernel_size - 1
  before = total // 2
  return ops.pad(x, [[0, 0], [before, total - before], [before, total - before], [0, 0]])


class FixedPaddingConv(keras.layers.Layer):
  """Bias-free conv (glorot-uniform by default, the TF default) with the original's padding."""

  def __init__(self, filters, kernel_size, strides=1, kernel_initializer="glorot_uniform",
               **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = kernel_size
    self.strides = strides
    explicit = strides > 1
    self.conv = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="valid" if explicit else "same",
        use_bias=False, kernel_initializer=kernel_initializer, name="conv")

  def call(self, x):
    if self.strides > 1:
      x = fixed_padding(x, self.kernel_size)
    return self.conv(x)


def conv1x1(filters, strides=1, name=None, kernel_initializer="glorot_uniform"):
  """Bias-free 1x1 conv; for a 1x1 kernel 'same' and 'valid' sample the same pixels."""
  return keras.layers.Conv2D(filters, 1, strides=strides, padding="valid", use_bias=False,
                             kernel_initializer=kernel_initializer, name=name)


class FixedPaddingMaxPool(keras.layers.Layer):
  """The root max-pool: zero padding (not -inf) then a VALID pool, as the original.

  Zeros matter in v2 and RevNet, whose stem has no ReLU: a border of negative activations pools
  to 0 here, where Keras 'same' would keep the negative maximum.
  """

  def __init__(self, pool_size=3, strides=2, **kwargs):
    super().__init__(**kwargs)
    self.pool_size = pool_size
    self.pool = keras.layers.MaxPooling2D(pool_size, strides=strides, padding="valid", name="pool")

  def call(self, x):
    return self.pool(fixed_padding(x, self.pool_size))


def logits_conv(num_classes, name="logits"):
  """1x1 conv with bias on the pooled features; float32 so softmax and losses run in float32."""
  return keras.layers.Conv2D(num_classes, 1, use_bias=True, kernel_initializer="glorot_uniform",
                             dtype="float32", name=name)


class Stage(keras.layers.Layer):
  """Runs its units in order; one Stage per end point gives paths like `block2/unit1/...`."""

  def __init__(self, members, **kwargs):
    super().__init__(**kwargs)
    self.members = list(members)

  def call(self, x, training=False):
    for member in self.members:
      x = member(x, training=training)
    return x


def residual_stages(unit, num_layers, strides, in_channels, out, style):
  """The four stages `block1..block4` of a ResNet: stage i has num_layers[i] units `unit(out * 2^i,
  stride, project, style)`; a stage's first unit strides (1 in block1, then `strides`), and a unit
  projects its shortcut when its stride or width changes the shape."""
  blocks = []
  for index, (count, stride) in enumerate(zip(num_layers, (1,) + tuple(strides))):
    units = []
    for j in range(count):
      unit_stride = stride if j == 0 else 1
      project = unit_stride > 1 or out != in_channels
      units.append(unit(out, unit_stride, project=project, style=style, name="unit%d" % (j + 1)))
      in_channels = out
    blocks.append(Stage(units, name="block%d" % (index + 1)))
    out *= 2
  return blocks
