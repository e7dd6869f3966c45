"""--precision as a Keras mixed-precision policy, and what `--precision=auto` picks.

`auto` picks from the devices present (`choose`, a pure function of a `Devices` description, so
every case is tested without the hardware): on TPUs mixed_bfloat16; on GPUs mixed_bfloat16 from
compute capability 8.0 (Ampere and newer: bfloat16 tensor cores, no loss scaling), mixed_float16
with loss scaling on 7.x (Volta, Turing: float16 tensor cores only), fp32 below; on a CPU
mixed_bfloat16 where it has AMX-BF16 units (1.5x the demo end to end, 1.7x the step on a 2-core
Xeon, as measured when issue #29 was filed), fp32 otherwise: AVX512_BF16 alone gave 1.0-1.6x in
the step but 1.11x end to end on a Zen 5 EPYC (docs/RESULTS.md), too little to give up float32's
mantissa by default (--precision=mixed_bfloat16 is one flag away).
A run resuming a workdir keeps the precision its flags.json recorded (`resolve`).

The policy is global: layers take their compute and variable dtypes from it when they are built,
so `apply_precision` must run before the task builds its model. It does not touch devices.

float16 on CPU: TensorFlow 2.21's CPU kernels do run float16 matmul and conv (forward and
gradient), so mixed_float16 works on a CPU-only machine; it is there for testing the GPU path, not
for speed (the CPU computes float16 no faster than float32). `float16_supported()` checks the
build at hand rather than trusting this note.
"""

import dataclasses
import json
import os
from typing import FrozenSet, Tuple

import keras
import tensorflow as tf

_POLICIES = {"fp32": "float32", "mixed_float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16"}
AUTO = "auto"
PRECISIONS = (AUTO,) + tuple(_POLICIES)


@dataclasses.dataclass(frozen=True)
class Devices:
  """What `auto` looks at: the kind of accelerator the run trains on and its capabilities."""
  kind: str  # "cpu", "gpu" or "tpu"
  cpu_flags: FrozenSet[str] = frozenset()  # /proc/cpuinfo's flags (x86: amx_bf16, avx512_bf16)
  compute_capabilities: Tuple[Tuple[int, int], ...] = ()  # one (major, minor) per GPU
  name: str = ""  # for the line that says what was chosen


def choose(devices):
  """(precision, why) for `devices`; see the module docstring."""
  if devices.kind == "tpu":
    return "mixed_bfloat16", "TPUs compute in bfloat16"
  if devices.kind == "gpu":
    if not devices.compute_capabilities:
      return "fp32", "the GPUs' compute capability is unknown"
    major, minor = min(devices.compute_capabilities)  # the slowest GPU decides
    capability = "compute capability %d.%d" % (major, minor)
    if major >= 8:
      return "mixed_bfloat16", "%s has bfloat16 tensor cores" % capability
    if major == 7:
      return "mixed_float16", "%s has float16 tensor cores only (with loss scaling)" % capability
    return "fp32", "%s has no tensor cores" % capability
  if "amx_bf16" in devices.cpu_flags:
    return "mixed_bfloat16", "this CPU has AMX-BF16 units"
  if "avx512_bf16" in devices.cpu_flags:
    return "fp32", ("this CPU has AVX512_BF16 but no AMX: bfloat16 measured 1.1x end to end on "
                    "such a CPU, too little for the default")
  return "fp32", "this CPU has no bfloat16 units"


def cpu_flags(path="/proc/cpuinfo"):
  """The CPU's feature flags (empty where /proc/cpuinfo is not there)."""
  try:
    with open(path) as f:
      for line in f:
        if line.startswith("flags"):
          return frozenset(line.split(":", 1)[1].split())
  except OSError:
    pass
  return frozenset()


def devices_of(strategy):
  """The Devices a run on `strategy` trains on (initialises TensorFlow's devices)."""
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return Devices("tpu", name="TPU")
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    capabilities = tuple(tuple(d["compute_capability"]) for d in details
                         if d.get("compute_capability"))
    return Devices("gpu", compute_capabilities=capabilities,
                   name=", ".join(d.get("device_name", "GPU") for d in details))
  return Devices("cpu", cpu_flags=cpu_flags(), name="CPU")


def recorded_precision(workdir):
  """The concrete precision a workdir's flags.json recorded, or None."""
  path = os.path.join(workdir or "", "flags.json")
  if not workdir or not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path) as f:
      value = json.load(f).get("precision")
  except (ValueError, tf.errors.OpError):
    return None
  return value if value in _POLICIES else None


def resolve(config, strategy):
  """(precision, why): `config.precision`, or with `auto` the workdir's recorded choice (a resumed
  run keeps it) or `choose` for the devices of `strategy`; `why` is None when nothing was chosen."""
  if (config.precision or "fp32") != AUTO:
    return config.precision or "fp32", None
  if getattr(config, "device", None) == "npu":
    return "fp32", "--device=npu: the Ascend adapter's own precision_mode casts to float16"
  recorded = recorded_precision(config.workdir)
  if recorded:
    return recorded, "recorded by the run this one resumes (%s)" % os.path.join(config.workdir,
                                                                                "flags.json")
  return choose(devices_of(strategy))


def policy_name(config) -> str:
  """The Keras policy for `config.precision` (resolved: not `auto`); ValueError naming the known
  values otherwise."""
  precision = config.precision or "fp32"
  if precision == AUTO:
    raise ValueError("--precision=auto is resolved when the run starts (precision.resolve)")
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
