"""tfssl: self-supervised visual representation learning in TensorFlow 2 / Keras 3.

The Keras way (tfssl/keras_api.py): `config_from_flagfile`, `build_task`, `training_dataset`,
`evaluation_dataset`, and `BackupAndRestore` (tfssl/callbacks.py: Keras's, saving on SIGTERM);
the command line: `python -m tfssl.train_and_eval`.
"""

import importlib
import importlib.util
import os
import sys

__version__ = "0.1.0"

# TensorFlow comes from an extra (pyproject.toml says why): without it, one line naming them.
NO_TENSORFLOW = ("tfssl needs TensorFlow >= 2.21, and none is installed: pip install 'tfssl[cpu]' "
                 "(the CPU build), 'tfssl[gpu]' (CUDA) or 'tfssl[tensorflow]'")


def _command_without_tensorflow():
  """A tfssl command (`python -m tfssl.<command>`, a `tfssl-*` script) where TensorFlow is missing:
  ends the process with NO_TENSORFLOW and exit code 2 instead of an import traceback."""
  command = sys.argv and (sys.argv[0] == "-m" or os.path.basename(sys.argv[0]).startswith("tfssl-"))
  if command and importlib.util.find_spec("tensorflow") is None:
    sys.stderr.write("tfssl: error: %s\n" % NO_TENSORFLOW)
    sys.exit(2)


_command_without_tensorflow()

# `python -m tfssl.<command>` imports this package while the module is being located, when
# sys.argv[0] is still "-m" (Python's documented behaviour), and before the command imports
# TensorFlow: the moment for the environment TensorFlow reads at import (runtime/cpu_defaults.py)
# and for filtering its C++ banner out of the console (runtime/console.py). A library user's
# process (a notebook, a script, pytest) is left alone.
if sys.argv and sys.argv[0] == "-m":
  from tfssl.runtime.console import quiet_tensorflow_banner
  from tfssl.runtime.cpu_defaults import apply_cpu_defaults
  apply_cpu_defaults()
  quiet_tensorflow_banner()

# Imported on first use, so that `import tfssl` does not import TensorFlow.
_API = {
    "config_from_flagfile": "tfssl.config",
    "build_task": "tfssl.keras_api",
    "training_dataset": "tfssl.keras_api",
    "evaluation_dataset": "tfssl.keras_api",
    "BackupAndRestore": "tfssl.callbacks",
}


def __getattr__(name):
  if name in _API:
    if importlib.util.find_spec("tensorflow") is None:
      raise ImportError(NO_TENSORFLOW)
    return getattr(importlib.import_module(_API[name]), name)
  raise AttributeError("module 'tfssl' has no attribute %r" % name)


def __dir__():
  return sorted(list(globals()) + list(_API))
