"""Everything the runtime sets up for one run, in the one order that works.

Threads and the --cpu_replicas split are frozen when TensorFlow initialises its devices, and
opening the NPU initialises them; the precision policy must be set before the model is built.
`start_runtime` does these in that order so the trainer cannot get it wrong; `Runtime.close`
undoes what needs undoing. (Environment defaults come earlier still: `apply_cpu_defaults()` must
run before `import tensorflow`, so it is not part of this.)
"""

import dataclasses
from typing import Optional

import tensorflow as tf

from tfssl.runtime import cpu_defaults, npu, precision, strategy as strategy_lib
from tfssl.runtime.checkpoint_settings import CheckpointSettings


@dataclasses.dataclass
class Runtime:
  strategy: tf.distribute.Strategy
  policy: str  # the Keras mixed-precision policy in force
  precision: str  # --precision as resolved (`auto` -> what it chose)
  precision_reason: Optional[str]  # why `auto` chose it; None when --precision named it
  loss_scale: bool  # whether the optimizer needs a LossScaleOptimizer
  chief: bool  # whether this worker's files are the ones that are kept
  workdir: Optional[str]  # where this worker writes: config.workdir on the chief, scratch elsewhere
  checkpoints: CheckpointSettings
  npu_handle: object = None
  config_workdir: Optional[str] = None

  def close(self):
    if self.config_workdir:
      strategy_lib.cleanup_worker_workdir(self.config_workdir, self.strategy)
    npu.close_npu_device(self.npu_handle)
    self.npu_handle = None


def start_runtime(config, run_config: Optional[npu.RunConfig] = None) -> Runtime:
  """Threads, strategy, NPU and precision for `config` (already passed through `run_config`)."""
  if config.precision != precision.AUTO:
    precision.policy_name(config)  # a bad --precision fails before any device is touched
  cpu_defaults.configure_threads(config)
  strategy = strategy_lib.make_strategy(config)
  npu_handle = npu.open_npu_device(config)
  chosen, reason = precision.resolve(config, strategy)
  config = config.replace(precision=chosen)
  policy = precision.apply_precision(config)
  checkpoints = (run_config.checkpoint_settings(config) if run_config is not None
                 else CheckpointSettings.from_config(config))
  workdir = strategy_lib.worker_workdir(config.workdir, strategy) if config.workdir else None
  return Runtime(strategy=strategy, policy=policy, precision=chosen, precision_reason=reason,
                 loss_scale=precision.needs_loss_scale(config),
                 chief=strategy_lib.is_chief(strategy), workdir=workdir, checkpoints=checkpoints,
                 npu_handle=npu_handle, config_workdir=config.workdir)
