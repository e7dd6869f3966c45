"""How often the trainer saves and how many checkpoints it keeps.

Config only has the original's time-based --save_checkpoints_secs; the Ascend run config saves by
step count. Both end up here so the trainer reads one object whichever way the run was configured.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
  """Save when `save_every_steps` steps have passed (if set), else every `save_every_secs` seconds.

  As in tf.estimator's RunConfig, the two cadences are exclusive: at most one of them is set.
  `keep_checkpoint_max=None` keeps every checkpoint (tf.train.CheckpointManager's max_to_keep).
  """
  save_every_steps: Optional[int] = None
  save_every_secs: Optional[int] = None
  keep_checkpoint_max: Optional[int] = 5

  def __post_init__(self):
    if self.save_every_steps is not None and self.save_every_secs is not None:
      raise ValueError("save checkpoints by steps or by seconds, not both")
    for name in ("save_every_steps", "save_every_secs", "keep_checkpoint_max"):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError("%s=%r: give a positive number" % (name, value))

  @classmethod
  def from_config(cls, config) -> "CheckpointSettings":
    """The cadence of a run configured by flags alone (--save_checkpoints_secs)."""
    for flag in ("save_checkpoints_secs", "keep_checkpoint_max"):
      value = getattr(config, flag)
      if value is not None and value < 1:
        raise ValueError("--%s=%r: give a positive number" % (flag, value))
    return cls(save_every_secs=config.save_checkpoints_secs,
               keep_checkpoint_max=config.keep_checkpoint_max)
