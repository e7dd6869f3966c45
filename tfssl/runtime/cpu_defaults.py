"""Environment and thread defaults for training on a CPU host.

Two moments matter, and both are before TensorFlow settles on its configuration:
- `apply_cpu_defaults()` sets environment variables that TensorFlow reads when it is imported and
  loads its kernels, so it has to run before `import tensorflow`. This module therefore does not
  import TensorFlow itself.
- `configure_threads()` sets the thread pools, which TensorFlow fixes when it initialises its
  devices; call it after the import and before the first op, strategy or model.

oneDNN: a ResNet-18 training step measured 1.7x faster with oneDNN's kernels on our 2-core x86 CPU.
The tensorflow-cpu 2.21 wheel leaves them off unless TF_ENABLE_ONEDNN_OPTS=1 is set (measured:
IsMklEnabled() is False with the variable unset on a 2-core AMD EPYC), so it is set here; a
user's own value (including 0, for bit-for-bit comparisons with other builds) is left alone. The
banner line TensorFlow then prints is filtered by runtime/console.py.
"""

import logging
import os
import platform

_X86 = ("x86_64", "amd64")


def apply_cpu_defaults(environ=None, machine=None) -> dict:
  """Sets the variables the user has not set; returns the ones it set."""
  environ = os.environ if environ is None else environ
  machine = (platform.machine() if machine is None else machine).lower()
  wanted = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # hide C++ info lines; warnings and errors still show
  if machine in _X86:
    wanted["TF_ENABLE_ONEDNN_OPTS"] = "1"  # oneDNN kernels are x86 only
  applied = {}
  for name, value in wanted.items():
    if name not in environ:
      environ[name] = value
      applied[name] = value
  return applied


def thread_counts(config=None, environ=None, cpu_count=None):
  """(intra_op, inter_op) threads: the user's TF_NUM_*_THREADS, else all cores and 2 (or more).

  One op at a time uses every core (a conv net step is a chain of large ops, and the default of
  one inter-op thread per core oversubscribes the cores when several ops run at once); a few
  inter-op threads keep independent ops, such as the replicas of --cpu_replicas, running side by side.
  """
  environ = os.environ if environ is None else environ
  cpu_count = cpu_count or os.cpu_count() or 1
  replicas = int(getattr(config, "cpu_replicas", 0) or 0) if config is not None else 0
  intra = _env_threads(environ, "TF_NUM_INTRAOP_THREADS", cpu_count)
  inter = _env_threads(environ, "TF_NUM_INTEROP_THREADS", max(2, replicas))
  return intra, inter


def _env_threads(environ, name, default):
  text = environ.get(name)
  if text is None or text == "":
    return default
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise ValueError("%s=%r is not a positive number of threads: fix it or unset it" % (name, text))
  return value


def configure_threads(config=None, environ=None):
  """Applies `thread_counts`; returns them, or None when TensorFlow had already initialised.

  Thread counts change speed, not results, so a late call (a second run in one process) only logs.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  intra, inter = thread_counts(config, environ)
  try:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
  except RuntimeError:
    logging.getLogger(__name__).warning(
        "TensorFlow had already initialised its devices; keeping its thread pools")
    return None
  return intra, inter
