"""The train step's guard against non-finite numbers (--on_nonfinite, --max_nonfinite_steps).

Every task applies its update through `Task.minimize` (tasks/base.py), which asks this guard whether
the step's loss and the global norm of its gradient are finite. The answer is reduced over the
replicas (one scalar all-reduce), so every replica and every worker takes the same decision:

- `stop` (default): the update is applied as usual (no branch in the step) and the guard counts the
  step; the trainer stops right after it, saves nothing from that state and names the newest
  finite checkpoint. The state after the step is thrown away, so applying it costs nothing.
- `skip`: the step changes nothing: the update is not applied (the optimizer's slots and its step
  counter stay as they were, as loss scaling does with an overflow), and the state the step itself
  updates (BatchNorm statistics, a momentum target, a queue) is put back as it was at the step's
  start (`skip_guarded`); after `max_consecutive` such steps in a row the trainer stops as above.
- `ignore`: no check at all (the step of tfssl before the guard; for timing the guard against it).

Under float16 loss scaling the optimizer itself skips steps whose scaled gradient overflows, which
is normal while it finds its scale; the guard then checks the loss only.

The counters are plain tf.Variables, not Keras weights: a task's checkpoint is the ordered list of
its weights (models/representation.py), which they must not shift.
"""

import functools

import tensorflow as tf

MODES = ("stop", "skip", "ignore")


class StepGuard(tf.Module):
  """Counts non-finite steps and, with mode `skip`, keeps their update out of the variables."""

  def __init__(self, mode="stop", max_consecutive=20, name="step_guard"):
    super().__init__(name=name)
    if mode not in MODES:
      raise ValueError("--on_nonfinite=%s: choose one of %s" % (mode, ", ".join(MODES)))
    if mode == "skip" and max_consecutive < 1:
      raise ValueError("--max_nonfinite_steps=%d: give a positive number" % max_consecutive)
    self.mode = mode
    self.max_consecutive = 1 if mode == "stop" else int(max_consecutive)
    # Updated by the first replica only; every replica computes the same reduced value.
    kwargs = dict(trainable=False, dtype=tf.int64,
                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.nonfinite_steps = tf.Variable(0, name="nonfinite_steps", **kwargs)  # in all
    self.consecutive = tf.Variable(0, name="consecutive_nonfinite_steps", **kwargs)
    # While a guarded train_step is traced: whether it runs, and its `finite` tensor.
    self.in_step, self.last_finite = False, None

  @property
  def active(self):
    return self.mode != "ignore"

  def step_is_finite(self, loss, grads, check_grads=True):
    """A scalar bool, the same on every replica: is the loss (and the gradient's global norm)
    finite on all of them?"""
    finite = tf.math.is_finite(tf.cast(loss, tf.float32))
    tensors = [g for g in grads if g is not None]
    if check_grads and tensors:
      norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in tensors])
      finite = tf.logical_and(finite, tf.math.is_finite(norm))
    bad = tf.cast(tf.logical_not(finite), tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
      bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    return tf.equal(bad, 0.0)

  def apply(self, optimizer, pairs, finite):
    """optimizer.apply_gradients(pairs), kept out in mode `skip` when `finite` is False; counts."""
    if self.mode == "skip":
      _apply_if(optimizer, pairs, finite)
    else:
      optimizer.apply_gradients(pairs)
    self._count(finite)
    self.last_finite = finite

  def _count(self, finite):
    bad = tf.cast(tf.logical_not(finite), tf.int64)
    self.nonfinite_steps.assign_add(bad)
    self.consecutive.assign((self.consecutive + bad) * bad)  # 0 again after a finite step

  def should_stop(self):
    """A scalar bool (cross-replica context): the run must stop here."""
    return self.consecutive >= self.max_consecutive


def _apply_if(optimizer, pairs, condition):
  """apply_gradients only where `condition` (the same on every replica) holds.

  A branch in the replica context cannot hold apply_gradients, which calls merge_call under
  tf.distribute; so the branch is taken in the cross-replica context and the update re-enters the
  replicas, as Keras's LossScaleOptimizer does for its own skipped steps.
  """
  def skipped():
    return tf.constant(False)

  if tf.__internal__.distribute.strategy_supports_no_merge_call():
    # The strategies that update without merge_call (XLA on GPUs) take the branch in place.
    def update():
      optimizer.apply_gradients(pairs)
      return tf.constant(True)

    tf.cond(condition, update, skipped)
    return

  def in_cross_replica(distribution, pairs, condition):
    agreed = distribution.experimental_local_results(condition)[0]

    def update():
      distribution.extended.call_for_each_replica(optimizer.apply_gradients, args=(pairs,))
      return tf.constant(True)

    tf.cond(agreed, update, skipped)

  tf.distribute.get_replica_context().merge_call(in_cross_replica, args=(pairs, condition))


def skip_guarded(train_step):
  """Wraps a task's train_step: in mode `skip`, the state the step changes besides the optimizer's
  update (Task.step_state_variables) is read at the step's start and written back where the step
  was not finite (with tf.where, not a branch: a branch in the replica context cannot hold the
  assignments that merge across replicas)."""
  @functools.wraps(train_step)
  def step(task, features):
    guard = task.step_guard
    if guard.mode != "skip" or guard.in_step:
      return train_step(task, features)  # a subclass's step calling its parent's: guarded once
    state = task.step_state_variables()
    before = [tf.identity(tf.convert_to_tensor(v)) for v in state]
    guard.in_step, guard.last_finite = True, None
    try:
      logs = train_step(task, features)
    finally:
      guard.in_step = False
    if guard.last_finite is not None:  # set by apply() while the step was traced
      for variable, value in zip(state, before):
        variable.assign(tf.where(guard.last_finite, tf.convert_to_tensor(variable), value))
    return logs
  return step
