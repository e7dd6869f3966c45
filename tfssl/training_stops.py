"""Why a training run stops before its last step, and what it leaves (README, "The console and exit
codes"): the trainer's side of the non-finite guard (tasks/step_guard.py), of SIGTERM and Ctrl-C
(runtime/stop_signals.py) and of the workdir's lock (runtime/workdir_lock.py).

Each stop is a TrainingStopped (or WorkdirLocked) whose one-line message names what is on disk.
"""

from absl import logging
import tensorflow as tf

from tfssl.runtime import stop_signals
from tfssl.runtime.workdir_lock import WorkdirLock, WorkdirLocked

NONFINITE_EXIT_CODE = 3


class TrainingStopped(RuntimeError):
  """The run stopped before its last step and says why in one line; `exit_code` is the command's."""

  def __init__(self, message, exit_code):
    super().__init__(message)
    self.exit_code = exit_code


def nonfinite_variables(variables):
  """The names of the float `variables` holding a value that is not finite (one check on the
  device for all of them; the names only when one is)."""
  floats = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
  if not floats or bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])):
    return []
  return [getattr(v, "path", v.name) for v in floats
          if not bool(tf.reduce_all(tf.math.is_finite(v)))]


def diverged(guard, step, latest_checkpoint, what=None):
  """The TrainingStopped of a run whose step (or checkpoint, `what`) is not finite."""
  if what is None and guard.mode == "skip":
    what = ("%d steps in a row were not finite after step %d (--on_nonfinite=skip, "
            "--max_nonfinite_steps=%d; %d skipped in all)" % (
                int(guard.consecutive.numpy()), step, guard.max_consecutive,
                int(guard.nonfinite_steps.numpy())))
  elif what is None:
    what = "the loss or its gradient was not finite at step %d (--on_nonfinite=stop)" % step
  keep = ("the newest checkpoint, %s, is finite and stays the one a run resumes from"
          % latest_checkpoint if latest_checkpoint else "no checkpoint was written before it")
  return TrainingStopped("%s: nothing was saved from it; %s: lower --lr (or check the data) and "
                         "run again" % (what, keep), NONFINITE_EXIT_CODE)


def stopped_by_signal(signals, step, total_steps, saved):
  """The TrainingStopped of a run that saved `saved` at `step` after SIGTERM or Ctrl-C (here, or
  on another worker)."""
  return TrainingStopped(
      "stopped by %s at step %d of %d: saved %s; run the same command to resume" % (
          signals.name or "a signal on another worker", step, total_steps, saved),
      stop_signals.exit_code(signals.received or 15))


def hold_workdir(workdir, chief, strategy, multi_worker):
  """The chief's lock on `workdir` (None on the other workers), taken before anything is written;
  WorkdirLocked when another training run holds it. With several workers, every one learns in one
  all-reduce whether the chief holds it, so none waits in a collective for a chief that left."""
  lock = WorkdirLock(workdir.path) if chief else None
  refused = None
  if lock is not None:
    workdir.make()
    try:
      took_over = lock.acquire()
      if took_over:
        logging.warning("%s", took_over)
    except WorkdirLocked as e:
      refused = e
  if multi_worker:
    vote = tf.constant(0.0 if refused is None else 1.0)
    votes = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(vote)),
                            axis=None)
    if refused is None and float(votes) > 0:
      refused = WorkdirLocked("the chief worker could not take --workdir %s: another training "
                              "run holds it (the chief's line names it)" % workdir.path)
  if refused is not None:
    raise refused
  return lock
