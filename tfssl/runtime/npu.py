"""The Ascend side: the seeds' NPURunConfig as tfssl settings, and the NPU as TensorFlow's device.

The Ascend seeds configured training through
`NPURunConfig(model_dir, save_checkpoints_steps, keep_checkpoint_max, iterations_per_loop,
log_step_count_steps, precision_mode, enable_data_pre_proc, hcom_parallel)`. `RunConfig` takes the
same arguments and maps them onto a Config (`apply_to`) plus the step-based checkpoint cadence that
Config has no flag for (`checkpoint_settings`). A field left as None keeps the Config's value.

precision_mode becomes a Keras policy: 'allow_mix_precision', 'allow_fp32_to_fp16' and 'force_fp16'
all become mixed_float16. Ascend's 'force_fp16' also keeps the variables in float16; Keras has no
such policy worth training with (float16 weights lose small updates), so the mixed policy, float16
compute with float32 variables, is the closest approximation. 'must_keep_origin_dtype' and
'force_fp32' become fp32.

No TensorFlow import here: the adapter has to be imported and opened early, and the RunConfig
mapping is plain data.
"""

import dataclasses
import importlib
from typing import Optional

from tfssl.runtime.checkpoint_settings import CheckpointSettings

PRECISION_MODES = {
    "allow_mix_precision": "mixed_float16",
    "allow_fp32_to_fp16": "mixed_float16",
    "force_fp16": "mixed_float16",  # approximated: see the module docstring
    "must_keep_origin_dtype": "fp32",
    "force_fp32": "fp32",
}

# Fields of NPURunConfig that have nothing to act on in tfssl, and why.
NO_OP_FIELDS = {
    "enable_data_pre_proc": "on Ascend it sinks the input pipeline onto the device; tfssl's tf.data "
                            "pipeline runs on the host and the TF2 adapter feeds the NPU itself",
    "hcom_parallel": "on Ascend it overlaps HCCL all-reduce with the backward pass; tfssl runs one "
                     "NPU per process, so there is no all-reduce for it to schedule",
}

ADAPTER_MISSING = ("--device=npu needs Ascend's TF2 adapter, the npu_device package: install the CANN "
                   "toolkit and the npu_device wheel of its TF plugin (pip install npu_device-*.whl from "
                   "the CANN release), or leave --device unset to run on CPU/GPU")


class NpuAdapterMissing(SystemExit):
  """The Ascend adapter cannot be imported; a SystemExit so the command line prints one line."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """The arguments of the Ascend seeds' NPURunConfig (None: keep the Config's value)."""
  model_dir: Optional[str] = None
  save_checkpoints_steps: Optional[int] = None
  keep_checkpoint_max: Optional[int] = None
  iterations_per_loop: Optional[int] = None
  log_step_count_steps: Optional[int] = None
  precision_mode: Optional[str] = None
  enable_data_pre_proc: Optional[bool] = None
  hcom_parallel: Optional[bool] = None

  def __post_init__(self):
    for name in ("save_checkpoints_steps", "iterations_per_loop", "log_step_count_steps"):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError("RunConfig %s=%r: give a positive number of steps" % (name, value))
    if self.keep_checkpoint_max is not None and self.keep_checkpoint_max < 0:
      raise ValueError("RunConfig keep_checkpoint_max=%r: give 0 (keep all) or a positive count"
                       % self.keep_checkpoint_max)
    if self.precision_mode is not None and self.precision_mode not in PRECISION_MODES:
      raise ValueError("RunConfig precision_mode=%r is unknown: use one of %s"
                       % (self.precision_mode, ", ".join(PRECISION_MODES)))

  def to_config_overrides(self) -> dict:
    """Config field -> value for every RunConfig field that has a Config counterpart and is set."""
    overrides = {}
    if self.model_dir is not None:
      overrides["workdir"] = self.model_dir
    if self.iterations_per_loop is not None:
      overrides["steps_per_execution"] = self.iterations_per_loop
    if self.precision_mode is not None:
      overrides["precision"] = PRECISION_MODES[self.precision_mode]
    if self.keep_checkpoint_max is not None:
      # The estimator read 0 as "keep all", which CheckpointManager spells None.
      overrides["keep_checkpoint_max"] = self.keep_checkpoint_max or None
    if self.log_step_count_steps is not None:
      overrides["log_every_steps"] = self.log_step_count_steps
    return overrides

  def apply_to(self, config):
    """A copy of `config` with this run config's settings."""
    return config.replace(**self.to_config_overrides())

  def checkpoint_settings(self, config) -> CheckpointSettings:
    """Step cadence when save_checkpoints_steps is set, else the Config's seconds cadence."""
    config = self.apply_to(config)
    if self.save_checkpoints_steps is None:
      return CheckpointSettings.from_config(config)
    return CheckpointSettings(save_every_steps=self.save_checkpoints_steps,
                              keep_checkpoint_max=config.keep_checkpoint_max)

  def notes(self):
    """One line per field that was set but has no effect in tfssl, for the run's log."""
    return ["RunConfig %s=%r has no effect: %s" % (name, getattr(self, name), reason)
            for name, reason in NO_OP_FIELDS.items() if getattr(self, name) is not None]


def open_npu_device(config):
  """For --device=npu: opens the NPU and makes it TensorFlow's default device; else returns None.

  Ascend's documented TF2 entry is `npu_device.open().as_default()`: `open` registers the NPU as a
  TensorFlow custom device (device id from ASCEND_DEVICE_ID, default 0) and `as_default` places every
  op without an explicit device there. `open` initialises TensorFlow's runtime, so call this after
  `make_strategy` (which does the device set-up that must come first) and before building the model.
  The adapter's own precision_mode (its global_options) is left at its default.
  """
  device = config.device or None
  if device is None:
    return None
  if device != "npu":
    raise ValueError("unknown --device=%s: use npu, or leave it unset for CPU/GPU/TPU" % device)
  try:
    npu_device = importlib.import_module("npu_device")
  except ModuleNotFoundError as err:
    if err.name != "npu_device":
      raise _broken_adapter(err) from None
    raise NpuAdapterMissing(ADAPTER_MISSING) from None
  except (ImportError, OSError) as err:
    raise _broken_adapter(err) from None
  handle = npu_device.open()
  handle.as_default()
  return handle


def _broken_adapter(err):
  return NpuAdapterMissing("--device=npu: the npu_device package is installed but does not load (%s): "
                           "source the CANN toolkit's set_env.sh so its libraries are found"
                           % (str(err).strip().splitlines() or [type(err).__name__])[0])


def close_npu_device(handle) -> None:
  """Releases the NPU that `open_npu_device` opened (None: nothing to do).

  The adapter also closes the device at interpreter exit; closing here frees it for the next run in
  the same process.
  """
  if handle is None:
    return
  import npu_device  # pylint: disable=import-outside-toplevel
  close = getattr(npu_device, "close", None)
  if close is not None:
    close()
