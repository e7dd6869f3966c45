"""Which variables get weight decay: a property of how the nets name their variables.

Kernels are decayed; BatchNorm parameters and statistics and biases are not, as the original's
l2_regularizer (attached to kernels only) and SimCLR's LARS exclusions. The tasks' L2 term and the
LARS/LARC optimisers both ask this one rule.
"""

_NO_DECAY_MARKERS = ("batch_norm", "batchnorm", "/bn", "gamma", "beta", "bias", "moving_")


def is_decayed(variable) -> bool:
  path = getattr(variable, "path", variable.name).lower()
  return not any(marker in path for marker in _NO_DECAY_MARKERS)
