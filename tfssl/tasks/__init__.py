"""Task registry: one module per method, imported lazily by name.

The registry owns the task names: `--task` is validated against it, and a method that tfssl does
not ship joins it with `register_task` (README, "Adding a method"); nothing else lists tasks.
"""

import importlib

# task name -> "module:Class" (imported when the task is built) or the class itself
_REGISTRY = {
    "supervised": "tfssl.tasks.supervised:Supervised",
    "rotation": "tfssl.tasks.rotation:Rotation",
    "exemplar": "tfssl.tasks.exemplar:Exemplar",
    "jigsaw": "tfssl.tasks.jigsaw:Jigsaw",
    "relative_patch_location": "tfssl.tasks.relative_patch_location:RelativePatchLocation",
    "simclr": "tfssl.tasks.simclr:SimCLR",
    "byol": "tfssl.tasks.byol:BYOL",
    "swav": "tfssl.tasks.swav:SwAV",
    "ava": "tfssl.tasks.ava:AVA",
    "linear_eval": "tfssl.tasks.linear_eval:LinearEval",
    "finetune": "tfssl.tasks.finetune:Finetune",
}


def register_task(name, task):
  """Adds `task` (a tfssl.tasks.base.Task subclass, or "module:Class") as --task=name."""
  if name in _REGISTRY:
    raise ValueError("task %r is already registered; register the method under another name" % name)
  _REGISTRY[name] = task


def get_task_class(name):
  """The Task subclass registered as `name`; ValueError listing the known ones otherwise."""
  if name not in _REGISTRY:
    raise ValueError("unknown task %r; known tasks: %s" % (name, ", ".join(task_names())))
  task = _REGISTRY[name]
  if isinstance(task, str):
    module, cls = task.split(":")
    task = getattr(importlib.import_module(module), cls)
  return task


def task_names():
  return sorted(_REGISTRY)
