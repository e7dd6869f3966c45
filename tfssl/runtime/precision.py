"""--precision as a Keras mixed-precision policy.

The policy is global: layers take their compute and variable dtypes from it when they are built,
so `apply_precision` must run before the task builds its model. It does not touch devices.

float16 on CPU: TensorFlow 2.21's CPU kernels do run float16 matmul and conv (forward and
gradient), so mixed_float16 works on a CPU-only machine; it is there for testing the GPU path, not
for speed (the CPU computes float16 no faster than float32). `float16_supported()` checks the
build at hand rather than trusting this note.
"""

import keras
import tensorflow as tf

_POLICIES = {"fp32": "float32", "mixed_float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16"}
PRECISIONS = tuple(_POLICIES)


def policy_name(config) -> str:
  """The Keras policy for `config.precision`; ValueError naming the known values otherwise."""
  precision = config.precision or "fp32"
  if precision not in _POLICIES:
    raise ValueError("unknown --precision=%s: use one of %s" % (precision, ", ".join(PRECISIONS)))
  return _POLICIES[precision]


def apply_precision(config) -> str:
  """Sets the global Keras policy for `config.precision` and returns its name."""
  name = policy_name(config)
  keras.mixed_precision.set_global_policy(name)
  return name


def needs_loss_scale(config) -> bool:
  """float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none."""
  return policy_name(config) == "mixed_float16"


def float16_supported() -> bool:
  """Whether this build runs a tiny float16 conv and matmul, with gradients, on the default device.

  Runs ops, so it initialises TensorFlow's devices: call it after `make_strategy`.
  """
  return dtype_supported(tf.float16)


def dtype_supported(dtype) -> bool:
  try:
    images = tf.Variable(tf.ones([1, 4, 4, 2], dtype))
    kernel = tf.ones([3, 3, 2, 2], dtype)
    with tf.GradientTape() as tape:
      features = tf.nn.conv2d(images, kernel, strides=1, padding="SAME")
      logits = tf.matmul(tf.reshape(features, [1, -1]), tf.ones([32, 2], dtype))
      total = tf.reduce_sum(logits)
    grad = tape.gradient(total, images)
    ok_grad = bool(tf.reduce_all(tf.math.is_finite(tf.cast(grad, tf.float32))))
  except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
    return False
  # With all-ones inputs a 3x3 SAME conv over 4x4 sums 100 neighbours per channel pair, so each of
  # the 2 logits is 2 outputs x 2 inputs x 100 = 400: small integers, exact in any float type.
  return ok_grad and float(tf.cast(total, tf.float32)) == 800.0
