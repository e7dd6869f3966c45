"""Loading CIFAR's python batches without running code from them.

`pickle.load` calls whatever global a file names, so a crafted "data_batch_1" runs code on load.
The official CIFAR files hold only dicts, lists, bytes/str, ints and numpy arrays, and the only
globals those need are numpy's array reconstruction. This unpickler resolves those and refuses any
other global with an error naming it. (numpy's own `allow_pickle=False` covers .npy files, not
these; no maintained library offers a restricted unpickler for them.)
"""

import importlib
import pickle

# (module, name) of the globals a numpy array pickle refers to. numpy 2 moved numpy.core to
# numpy._core; CIFAR's files (pickled by Python 2) name the old module.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy", "ndarray"): ("numpy",),
    ("numpy", "dtype"): ("numpy",),
}


class ForbiddenGlobal(pickle.UnpicklingError):
  """The pickle names a global that CIFAR's files never hold."""


class _ArraysOnly(pickle.Unpickler):

  def find_class(self, module, name):
    homes = _ALLOWED.get((module, name))
    if homes is None:
      raise ForbiddenGlobal("it refers to %s.%s, which a CIFAR batch never holds (a pickle that "
                            "names it can run code)" % (module, name))
    for home in homes:
      try:
        return getattr(importlib.import_module(home), name)
      except (ImportError, AttributeError):
        continue
    raise ForbiddenGlobal("numpy has no %s.%s" % (module, name))


def load(file, encoding="bytes"):
  """pickle.load restricted to dicts, lists, strings, numbers and numpy arrays."""
  return _ArraysOnly(file, encoding=encoding).load()
