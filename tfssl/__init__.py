"""tfssl: self-supervised visual representation learning in TensorFlow 2 / Keras 3.

The Keras way (tfssl/keras_api.py): `config_from_flagfile`, `build_task`, `training_dataset`,
`evaluation_dataset`, and `BackupAndRestore` (tfssl/callbacks.py: Keras's, saving on SIGTERM);
the command line: `python -m tfssl.train_and_eval`.
"""

import importlib
import sys

__version__ = "0.1.0"

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
    return getattr(importlib.import_module(_API[name]), name)
  raise AttributeError("module 'tfssl' has no attribute %r" % name)


def __dir__():
  return sorted(list(globals()) + list(_API))
