"""Task registry: one module per method, imported lazily by name.

Adding a method is adding `tasks/<name>.py` with a `Task` subclass and one line here.
"""

import importlib

from tfssl.config import KNOWN_TASKS

# task name -> (module, class name)
_REGISTRY = {
    "supervised": ("tfssl.tasks.supervised", "Supervised"),
    "rotation": ("tfssl.tasks.rotation", "Rotation"),
    "exemplar": ("tfssl.tasks.exemplar", "Exemplar"),
    "jigsaw": ("tfssl.tasks.jigsaw", "Jigsaw"),
    "relative_patch_location": ("tfssl.tasks.relative_patch_location", "RelativePatchLocation"),
    "simclr": ("tfssl.tasks.simclr", "SimCLR"),
    "byol": ("tfssl.tasks.byol", "BYOL"),
    "swav": ("tfssl.tasks.swav", "SwAV"),
    "ava": ("tfssl.tasks.ava", "AVA"),
    "linear_eval": ("tfssl.tasks.linear_eval", "LinearEval"),
    "finetune": ("tfssl.tasks.finetune", "Finetune"),
    "knn_eval": ("tfssl.tasks.knn_eval", "KnnEval"),
}
assert set(_REGISTRY) == set(KNOWN_TASKS), "config.KNOWN_TASKS and the task registry disagree"


def get_task_class(name):
  """The Task subclass registered as `name`; ValueError listing the known ones otherwise."""
  if name not in _REGISTRY:
    raise ValueError("unknown task %r; known tasks: %s" % (name, ", ".join(sorted(_REGISTRY))))
  module, cls = _REGISTRY[name]
  return getattr(importlib.import_module(module), cls)


def task_names():
  return sorted(_REGISTRY)
