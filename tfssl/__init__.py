"""tfssl: self-supervised visual representation learning in TensorFlow 2 / Keras 3.

The Keras way (tfssl/keras_api.py): `config_from_flagfile`, `build_task`, `training_dataset`,
`evaluation_dataset`; the command line: `python -m tfssl.train_and_eval`.
"""

import importlib

__version__ = "0.1.0"

# Imported on first use, so that `import tfssl` does not import TensorFlow.
_API = {
    "config_from_flagfile": "tfssl.config",
    "build_task": "tfssl.keras_api",
    "training_dataset": "tfssl.keras_api",
    "evaluation_dataset": "tfssl.keras_api",
}


def __getattr__(name):
  if name in _API:
    return getattr(importlib.import_module(_API[name]), name)
  raise AttributeError("module 'tfssl' has no attribute %r" % name)


def __dir__():
  return sorted(list(globals()) + list(_API))
