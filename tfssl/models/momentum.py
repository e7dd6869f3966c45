"""A network's momentum copy: BYOL's target network, and the key encoder of the momentum methods
to come (MoCo), in one place.

`MomentumCopy(online, target)` pairs the weights of the online layers with those of their target
copies, built the same way from the same calls (the method builds both): `initialize()` copies the
online weights into the target once and makes them non-trainable; `update(tau)` moves every target
weight, BatchNorm's moving statistics included, to

    target <- tau * target + (1 - tau) * online

after the step. Every replica holds the same online weights after a step, so each updates its own
copy of the target identically (no communication). `ema_rate` is the decay rate's schedule:

    tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2    (cosine: BYOL's paper, tau_base -> 1)
    tau = tau_base                                          (constant: MoCo's m, BYOL's TF2 seed)

with k the step being taken (0 first) and K the run's total steps.
"""

import math

import tensorflow as tf

TAU_SCHEDULES = ("cosine", "constant")


def ema_rate(step, total_steps, tau_base, schedule="cosine"):
  """The decay rate at `step` (a tensor or number) of `total_steps`."""
  if schedule not in TAU_SCHEDULES:
    raise ValueError("unknown --tau_schedule %r: use one of %s"
                     % (schedule, ", ".join(TAU_SCHEDULES)))
  if schedule == "constant":
    return tf.constant(tau_base, tf.float32)
  progress = tf.cast(step, tf.float32) / float(max(total_steps, 1))
  return 1.0 - (1.0 - tau_base) * (tf.cos(math.pi * progress) + 1.0) / 2.0


class MomentumCopy:
  """The online layers and their target copies (lists of built Keras layers, in the same order).

  A plain object, not a layer: the method holds the networks themselves as attributes (so Keras
  tracks and checkpoints them once); this only pairs their weights.
  """

  def __init__(self, online, target, name="momentum copy"):
    self.online = list(online)
    self.target = list(target)
    self.name = name
    self.ready = False

  def online_weights(self):
    return [w for layer in self.online for w in layer.weights]

  def target_weights(self):
    return [w for layer in self.target for w in layer.weights]

  def initialize(self):
    """Copies the online weights into the target (eagerly, once, even when first reached inside
    a traced function) and makes the target's weights non-trainable."""
    online, target = self.online_weights(), self.target_weights()
    if [tuple(v.shape) for v in online] != [tuple(v.shape) for v in target]:
      raise RuntimeError("%s: the target network does not mirror the online one" % self.name)
    with tf.init_scope():
      for t, o in zip(target, online):
        t.assign(o)
        t.trainable = False
    self.ready = True

  def update(self, tau):
    tau = tf.cast(tau, tf.float32)
    for t, o in zip(self.target_weights(), self.online_weights()):
      t.assign(tau * t + (1.0 - tau) * tf.cast(o, t.dtype))
