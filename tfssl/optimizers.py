"""Learning-rate schedules and optimizers: the original's warm-up + piecewise decay, SimCLR's
warm-up + cosine (SwAV's with a warm-up start and a cosine floor), the original's momentum SGD,
SimCLR's LARS and SwAV's LARC, all Keras 3 objects. LARS and LARC are written here because Keras 3
has neither (its Lion/Lamb are other methods).

The schedule is evaluated at the optimizer's `iterations`, the number of updates applied before
this one, which is the TF1 global_step the originals read.
"""

import math

import keras
from keras import ops

from tfssl.models.weight_decay import is_decayed

LR_SCHEDULES = ("piecewise", "cosine")
LR_SCALINGS = ("linear", "sqrt")
OPTIMIZERS = ("sgd", "adam", "lars", "larc")


@keras.saving.register_keras_serializable(package="tfssl")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up from `start_lr` to `base_lr` over `warmup_steps`, then `piecewise` or `cosine`.

  warm-up: start_lr + (base_lr - start_lr) * step / warmup_steps (SimCLR's, from 0; SwAV's from
    --start_warmup, whose np.linspace reaches base_lr one step earlier: at most
    (base_lr - start_lr) / warmup_steps apart at any step).
  piecewise: base_lr * decay_factor^i after the i-th boundary (lr = values[i] while
    boundaries[i-1] < step <= boundaries[i], tf.train.piecewise_constant's convention; boundaries
    count from step 0, so the warm-up does not shift them).
  cosine: final_lr + (base_lr - final_lr) * 0.5 * (1 + cos(pi * min(step - warmup, decay) / decay))
    with decay = total_steps - warmup_steps (SimCLR's WarmUpAndCosineDecay with final_lr 0, SwAV's
    cosine to --final_lr).
  """

  def __init__(self, base_lr, warmup_steps=0.0, decay="piecewise", boundaries=(), decay_factor=0.1,
               total_steps=1, start_lr=0.0, final_lr=0.0):
    if decay not in LR_SCHEDULES:
      raise ValueError("unknown lr schedule %r: use one of %s" % (decay, ", ".join(LR_SCHEDULES)))
    if final_lr and decay != "cosine":
      raise ValueError("--final_lr is where the cosine schedule ends: use it with "
                       "--lr_schedule=cosine")
    self.start_lr = float(start_lr or 0.0)
    self.final_lr = float(final_lr or 0.0)
    self.base_lr = float(base_lr)
    self.warmup_steps = float(warmup_steps)
    self.decay = decay
    self.boundaries = [int(b) for b in boundaries]
    self.decay_factor = float(decay_factor)
    self.total_steps = int(total_steps)

  def _decayed(self, step):
    if self.decay == "cosine":
      decay_steps = max(self.total_steps - self.warmup_steps, 1.0)
      progress = ops.minimum(ops.maximum(step - self.warmup_steps, 0.0), decay_steps) / decay_steps
      cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
      return self.final_lr + (self.base_lr - self.final_lr) * cosine
    # Boundaries ascend, so the last one passed decides; values are Python doubles as TF1's.
    lr = ops.convert_to_tensor(self.base_lr, "float32")
    for i, boundary in enumerate(self.boundaries):
      value = self.base_lr * self.decay_factor ** (i + 1)
      lr = ops.where(ops.greater(step, float(boundary)), value, lr)
    return lr

  def __call__(self, step):
    step = ops.cast(step, "float32")
    decayed = self._decayed(step)
    if self.warmup_steps <= 0:
      return decayed
    warmup = self.start_lr + step * ((self.base_lr - self.start_lr) / self.warmup_steps)
    return ops.where(ops.less(step, self.warmup_steps), warmup, decayed)

  def get_config(self):
    return {"base_lr": self.base_lr, "warmup_steps": self.warmup_steps, "decay": self.decay,
            "boundaries": list(self.boundaries), "decay_factor": self.decay_factor,
            "total_steps": self.total_steps, "start_lr": self.start_lr, "final_lr": self.final_lr}


def build_lr_schedule(config, steps_per_epoch, total_steps):
  """The run's schedule: base = scaled_lr(config), warm-up, then decay.

  `piecewise` is the original's get_lr (warm-up over warmup_epochs * steps_per_epoch steps,
  boundaries at e * steps_per_epoch for e in decay_epochs, factor lr_decay_factor); `cosine` is
  SimCLR's (warm-up steps rounded to an integer, then cosine to --final_lr at total_steps).
  """
  base_lr = scaled_lr(config)
  warmup = float(config.warmup_epochs or 0) * steps_per_epoch
  if config.lr_schedule == "cosine":
    warmup = float(int(round(warmup)))
  return WarmupSchedule(
      base_lr, warmup_steps=warmup, decay=config.lr_schedule,
      boundaries=[int(e * steps_per_epoch) for e in config.decay_epoch_list],
      decay_factor=config.lr_decay_factor, total_steps=total_steps,
      start_lr=config.start_warmup, final_lr=config.final_lr)


def scaled_lr(config):
  """--lr for the run's batch: linear (lr * batch_size / lr_scale_batch_size, the original's and
  SimCLR's default, whose lr_scale_batch_size is 256) or sqrt (lr * sqrt(batch_size), SimCLR's
  --learning_rate_scaling=sqrt: 0.075 at batch 4096 is 0.3 per 256 linearly)."""
  if config.lr is None or config.batch_size is None:
    raise ValueError("--lr and --batch_size are required to build the learning-rate schedule")
  scaling = config.learning_rate_scaling or "linear"
  if scaling not in LR_SCALINGS:
    raise ValueError("unknown --learning_rate_scaling=%s: use linear or sqrt" % scaling)
  if scaling == "sqrt":
    return config.lr * math.sqrt(config.batch_size)
  scale_batch = config.lr_scale_batch_size or config.batch_size
  return config.lr * config.batch_size / scale_batch


@keras.saving.register_keras_serializable(package="tfssl")
class MomentumSGD(keras.optimizers.SGD):
  """tf.compat.v1.train.MomentumOptimizer: accum = m * accum + g; w -= lr * accum.

  Keras SGD keeps lr inside its velocity (v = m * v - lr * g), which is the same update only at
  a constant lr; the original's warm-up and step decays act on the whole accumulated direction
  at once, so this keeps the TF1 form. Not Nesterov, as the original.
  """

  def __init__(self, learning_rate=0.01, momentum=0.9, **kwargs):
    kwargs.pop("nesterov", None)
    super().__init__(learning_rate=learning_rate, momentum=float(momentum), nesterov=False,
                     **kwargs)

  def update_step(self, gradient, variable, learning_rate):
    lr = ops.cast(learning_rate, variable.dtype)
    gradient = ops.cast(gradient, variable.dtype)
    if self.momentum == 0:
      self.assign_sub(variable, ops.multiply(gradient, lr))
      return
    accum = self.momentums[self._get_variable_index(variable)]
    self.assign(accum, ops.add(ops.multiply(accum, ops.cast(self.momentum, variable.dtype)),
                               gradient))
    self.assign_sub(variable, ops.multiply(accum, lr))


class _ExemptsFromDecay(keras.optimizers.Optimizer):
  """An optimizer that applies weight decay itself and can be told, before it is built, which
  variables to leave undecayed (the nets' own exemptions, such as RevNet's stem)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self._exempt = set()

  def exempt_from_weight_decay(self, variables):
    """No weight decay (trust ratio kept) for these variables; call before build()."""
    if self.built:
      raise RuntimeError("%s.exempt_from_weight_decay must be called before the optimizer is built"
                         % type(self).__name__)
    self._exempt.update(id(v) for v in variables)


@keras.saving.register_keras_serializable(package="tfssl")
class LARS(_ExemptsFromDecay):
  """SimCLR's LARS (lars_optimizer.py, classic momentum), for Keras 3.

  For each variable: g += weight_decay * w; trust = eeta * ||w|| / ||g|| when both norms are > 0,
  else 1; v = momentum * v + lr * trust * g; w -= v (Nesterov: w -= momentum * v + lr * trust * g).
  Variables that `tfssl.models.weight_decay.is_decayed` rejects (BatchNorm parameters, biases) get neither
  the weight decay nor the trust ratio, as SimCLR's exclusions; so do variables passed to
  `exclude_from_adaptation` (SimCLR's `head_supervised`, whose L2 the task puts in the loss
  instead). Variables passed to
  `exempt_from_weight_decay` before the build (a net's own exemptions, such as RevNet's stem) keep
  the trust ratio but get no decay, as SimCLR's separate decay / adaptation lists allow. The weight
  decay lives here, not in the loss: under LARS, Task.weight_decay_loss holds only the L2 of the
  excluded variables. Keras' own decoupled `weight_decay` is not used.
  """

  def __init__(self, learning_rate=0.001, momentum=0.9, weight_decay=0.0, eeta=0.001,
               nesterov=False, name="lars", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.momentum = float(momentum)
    self.lars_weight_decay = float(weight_decay or 0.0)
    self.eeta = float(eeta)
    self.nesterov = bool(nesterov)
    self._excluded = set()

  def exclude_from_adaptation(self, variables):
    """Neither trust ratio nor weight decay for these variables (plain momentum); before build()."""
    if self.built:
      raise RuntimeError("LARS.exclude_from_adaptation must be called before the optimizer is built")
    self._excluded.update(id(v) for v in variables)

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    self.velocities = self.add_optimizer_variables(variables, "momentum")
    # Decided once from the Keras variable paths; update_step may see the raw tf.Variable.
    self._adapted = [is_decayed(v) and id(v) not in self._excluded for v in variables]
    self._decayed = [a and id(v) not in self._exempt for a, v in zip(self._adapted, variables)]

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    dtype = variable.dtype
    lr = ops.cast(learning_rate, dtype)
    grad = ops.cast(gradient, dtype)
    scaled_lr = lr
    if self._adapted[index]:
      if self.lars_weight_decay and self._decayed[index]:
        grad = ops.add(grad, ops.multiply(ops.cast(self.lars_weight_decay, dtype), variable))
      w_norm = ops.sqrt(ops.sum(ops.square(variable)))
      g_norm = ops.sqrt(ops.sum(ops.square(grad)))
      # Guard the division so the branch not taken cannot produce inf/nan.
      ratio = ops.cast(self.eeta, dtype) * w_norm / ops.where(g_norm > 0, g_norm, 1.0)
      trust = ops.where(ops.logical_and(w_norm > 0, g_norm > 0), ratio, 1.0)
      scaled_lr = ops.multiply(lr, trust)
    momentum = ops.cast(self.momentum, dtype)
    velocity = self.velocities[index]
    self.assign(velocity, ops.add(ops.multiply(momentum, velocity), ops.multiply(scaled_lr, grad)))
    if self.nesterov:
      step = ops.add(ops.multiply(momentum, velocity), ops.multiply(scaled_lr, grad))
    else:
      step = velocity
    self.assign_sub(variable, step)

  def get_config(self):
    config = super().get_config()
    config.update({"momentum": self.momentum, "weight_decay": self.lars_weight_decay,
                   "eeta": self.eeta, "nesterov": self.nesterov})
    return config


@keras.saving.register_keras_serializable(package="tfssl")
class LARC(_ExemptsFromDecay):
  """apex's LARC(clip=False) around torch's SGD(momentum, weight_decay): SwAV's optimiser.

  For every variable with a gradient, BatchNorm parameters and biases included:
    trust = eeta * ||w|| / (||g|| + wd * ||w|| + 1e-8)  when ||w|| > 0 and ||g|| > 0, and then
    d = (g + wd * w) * trust;  otherwise d = g (apex then adds no decay either);
    buf = momentum * buf + d;  w -= lr * buf   (torch's momentum: lr outside the buffer).
  Unlike LARS, the learning rate multiplies after the momentum, so a warm-up or decay acts on the
  whole accumulated direction at once. Variables passed to `exempt_from_weight_decay` get wd 0.
  """

  EPS = 1e-8  # apex LARC's eps

  def __init__(self, learning_rate=0.001, momentum=0.9, weight_decay=0.0, eeta=0.001,
               name="larc", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.momentum = float(momentum)
    self.larc_weight_decay = float(weight_decay or 0.0)
    self.eeta = float(eeta)

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    self.momentums = self.add_optimizer_variables(variables, "momentum")
    self._decay = [0.0 if id(v) in self._exempt else self.larc_weight_decay for v in variables]

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    dtype = variable.dtype
    grad = ops.cast(gradient, dtype)
    wd = ops.cast(self._decay[index], dtype)
    w_norm = ops.sqrt(ops.sum(ops.square(variable)))
    g_norm = ops.sqrt(ops.sum(ops.square(grad)))
    trust = ops.cast(self.eeta, dtype) * w_norm / (g_norm + wd * w_norm + self.EPS)
    adapted = ops.multiply(ops.add(grad, ops.multiply(wd, variable)), trust)
    direction = ops.where(ops.logical_and(w_norm > 0, g_norm > 0), adapted, grad)
    buf = self.momentums[index]
    self.assign(buf, ops.add(ops.multiply(ops.cast(self.momentum, dtype), buf), direction))
    self.assign_sub(variable, ops.multiply(ops.cast(learning_rate, dtype), buf))

  def get_config(self):
    config = super().get_config()
    config.update({"momentum": self.momentum, "weight_decay": self.larc_weight_decay,
                   "eeta": self.eeta})
    return config


def slot_variables(optimizer, variable):
  """The optimizer's state for `variable` (momentum, Adam's moments, ...): Keras 3 names each slot
  `<variable path with / as _>_<slot name>` (Optimizer.add_variable_from_reference)."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  prefix = variable.path.replace("/", "_") + "_"
  return [v for v in inner.variables
          if v.name.startswith(prefix) and tuple(v.shape) == tuple(variable.shape)]


def build_optimizer(config, schedule, no_weight_decay=(), not_adapted=()):
  """The optimizer named by --optimizer, on `schedule`; wrapped for loss scaling under float16.

  sgd: the original's MomentumOptimizer (momentum --momentum, not Nesterov); adam: the original's
  AdamOptimizer (TF1's epsilon 1e-8); lars: SimCLR's LARS with --weight_decay inside; larc: SwAV's
  apex LARC with --weight_decay inside. `no_weight_decay`: the nets' exemptions (RevNet's stem);
  `not_adapted`: what LARS leaves to plain momentum (SimCLR's head_supervised).
  Under a tf.distribute strategy, create it and call `optimizer.build(trainable_variables)` inside
  `strategy.scope()` before the first step: Keras 3 cannot create its slot variables inside
  `strategy.run` (any Keras optimizer fails there with "You must feed a value for placeholder").
  """
  name = (config.optimizer or "sgd").lower()
  if name == "sgd":
    optimizer = MomentumSGD(learning_rate=schedule, momentum=config.momentum)
  elif name == "adam":
    optimizer = keras.optimizers.Adam(learning_rate=schedule, epsilon=1e-8)
  elif name == "lars":
    optimizer = LARS(learning_rate=schedule, momentum=config.momentum,
                     weight_decay=config.weight_decay)
    optimizer.exclude_from_adaptation(not_adapted)
  elif name == "larc":
    optimizer = LARC(learning_rate=schedule, momentum=config.momentum,
                     weight_decay=config.weight_decay)
  else:
    raise ValueError("unknown --optimizer %r: use one of %s" % (config.optimizer,
                                                                ", ".join(OPTIMIZERS)))
  if no_weight_decay and isinstance(optimizer, _ExemptsFromDecay):
    optimizer.exempt_from_weight_decay(no_weight_decay)
  if config.precision == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer
