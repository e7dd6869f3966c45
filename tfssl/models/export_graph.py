"""Reading an export's object graph and traced functions: which block a variable belongs to, and
which variables an end point reads. Fine-tuning uses both to freeze the blocks before
--fine_tune_after_block and to train only what feeds pre_logits.

The blocks convention, part of every net's contract (tfssl/models/__init__.py, checked for every
architecture in tests/test_models.py): a net keeps its stages, in order, in a list attribute
`blocks` (block i + 1 is `blocks[i]`), its stem in `root_conv` / `root_bn`, and everything after
the last block (final_bn, VGG's fc6/fc7, the logits conv) under other names. A SavedModel keeps
those attribute names as object-graph paths (`net/blocks/0/...`), while the tf.Variable names of a
Keras 3 net are only `<net>/kernel`, so the paths are what tells the blocks apart.
"""

from collections import deque

import tensorflow as tf

STEM_NAMES = ("root_conv", "root_bn")
AFTER_BLOCKS = 10 ** 6  # the position of everything after the last block (final_bn, fc6, fc7)


def variable_paths(root):
  """{variable ref: [object-graph paths from root]}, e.g. 'net/blocks/0/members/0/bn1/gamma'.

  A variable is usually reachable twice: through the net's attributes and through flat lists
  such as the module's `variable_list`; every path is kept and `block_of_paths` picks.
  """
  paths, seen = {}, {id(root)}
  queue = deque([(root, "")])
  while queue:
    obj, prefix = queue.popleft()
    view = tf.train.TrackableView(obj)
    for name, child in view.children(obj).items():
      path = "%s/%s" % (prefix, name) if prefix else name
      if isinstance(child, tf.Variable):
        paths.setdefault(child.ref(), []).append(path)
      elif id(child) not in seen:
        seen.add(id(child))
        queue.append((child, path))
  return paths


def block_of(path):
  """i for block i, 0 for the stem, None when the path does not say (module docstring)."""
  parts = path.split("/")
  for i, part in enumerate(parts[:-1]):
    if part == "blocks" and parts[i + 1].isdigit():
      return int(parts[i + 1]) + 1
  if any(part in STEM_NAMES for part in parts):
    return 0
  return None


def block_of_paths(paths):
  """The block any of a variable's paths names; AFTER_BLOCKS when none does (final_bn, fc6, ...)."""
  for path in paths:
    block = block_of(path)
    if block is not None:
      return block
  return AFTER_BLOCKS


def feeding_variables(function, output):
  """Refs of the variables that the restored `function`'s `output` end point reads, or None.

  A gradient cannot tell: a restored function is one op whose gradient is zero, not None, for
  inputs its output does not use, and a genuine gradient can be exactly zero (a BatchNorm gamma
  initialised to zero). So this walks the traced graph back from the output to the captured
  variable handles. None (train every candidate) when a handle cannot be matched to a variable.
  """
  reached = set()
  for fn in function.concrete_functions:
    outputs = fn.structured_outputs
    if not isinstance(outputs, dict) or output not in outputs:
      raise ValueError("the export's representation has no %r end point (it has %s)"
                       % (output, ", ".join(sorted(outputs)) if isinstance(outputs, dict) else
                          type(outputs).__name__))
    # A dict flattens in sorted key order, as the function's flat outputs are.
    target = fn.outputs[sorted(outputs).index(output)]
    variables = {}
    for v in fn.variables:
      # The graph captured the variable itself (under a strategy) or a component's handle.
      variables[id(v)] = v
      for component in tf.distribute.get_strategy().experimental_local_results(v):
        variables[id(component.handle)] = v
    captured = {internal.ref(): external for external, internal in fn.graph.captures}
    seen, stack = {target.op}, [target.op]
    while stack:
      op = stack.pop()
      for tensor in op.inputs:
        if tensor.ref() in captured and tensor.dtype == tf.resource:
          variable = variables.get(id(captured[tensor.ref()]))
          if variable is None:
            return None
          reached.add(variable.ref())
        if tensor.op not in seen:
          seen.add(tensor.op)
          stack.append(tensor.op)
  return reached
