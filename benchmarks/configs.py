"""A task's Config from its flagfile, as `train_and_eval --flagfile=...` builds it.

The benchmarks use tfssl.tools.experiment's parser: each flagfile is parsed into a FlagValues of its
own, so one task's flags never leak into the next task's Config or into the benchmark's own flags
(--train_steps, --dataset_dir); tests/test_config.py holds the regression test.
"""

from tfssl.tools.experiment import config_from_flagfile, flagfile_path

__all__ = ["config_from_flagfile", "flagfile_path"]
