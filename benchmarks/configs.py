"""A task's Config from its flagfile, as `train_and_eval --flagfile=...` builds it.

tfssl.tools.experiment.config_from_flagfile passes an empty absl FlagValues to
tfssl.config.define_flags, which takes `flag_values or flags.FLAGS`; an empty FlagValues is falsy,
so the flags land on absl's global FLAGS: one flagfile's values then leak into the next task's
Config and overwrite this script's own flags of the same name (--train_steps, --dataset_dir).
Until that is fixed, the benchmarks parse each flagfile into a FlagValues of its own, which a
placeholder flag keeps non-empty.
"""

import os

from absl import flags

from tfssl.config import Config, define_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flagfile_path(task, dataset):
  return os.path.join(REPO, "flags", task, dataset + ".cfg")


def config_from_flagfile(path, **overrides):
  fv = flags.FlagValues()
  flags.DEFINE_bool("tfssl_benchmark_placeholder", False, "keeps this FlagValues non-empty",
                    flag_values=fv)
  define_flags(fv)
  argv = ["tfssl", "--flagfile=" + path]
  argv += ["--%s=%s" % (k, v) for k, v in overrides.items() if v is not None]
  fv(argv)
  return Config.from_flags(fv)
