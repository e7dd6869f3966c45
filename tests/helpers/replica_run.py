"""One side of the replica-equivalence proof: a few training steps of a task on a fixed global
batch, on one replica (the default strategy) or on two (MirroredStrategy over the two logical
CPUs the test process made at start-up, tests/conftest.py), in the test's own process.

  run(config_values, replicas, batch, steps, init=None, mistake=None, permuted_order=None)

- batch: {name: array} of the fixed global batch, fed whole to one replica or split in order
  across the replicas
- init: {"w_<i>", "name_<i>"} of initial weights to load, or None to start from the task's own
  (returned under "init")
- mistake: optional, to prove the comparison can fail: "no_gather" computes SimCLR's NT-Xent over
  each replica's own negatives only
- permuted_order: optional permutation of the batch's rows: after the run, the same run again
  from the same start on the batch with its rows permuted (the same model in exact arithmetic:
  every loss and statistic is a mean over rows, only the order of the sums changes), returned
  under "permuted"

Returns {"loss_<step>", "w_<i>", "name_<i>", "global_step"} (+ "init", "permuted").
"""

import contextlib

import numpy as np
import tensorflow as tf

from tfssl.config import Config
from tfssl.trainer import Trainer


def weights(task):
  """{"w_<i>": value, "name_<i>": path} of every task weight, in the trainer's order."""
  out = {}
  for i, v in enumerate(task.weights):
    out["w_%d" % i] = np.array(v.numpy())
    out["name_%d" % i] = v.path
  return out


def load_weights(task, saved):
  for i, variable in enumerate(task.weights):
    if str(saved["name_%d" % i]) != variable.path:
      raise RuntimeError("weight %d is %s here but %s in the saved weights"
                         % (i, variable.path, saved["name_%d" % i]))
    # In cross-replica context this writes every replica's copy.
    variable.assign(saved["w_%d" % i])


def distribute(strategy, batch):
  """The global batch as per-replica values: replica r gets rows [r * local, (r + 1) * local)."""
  replicas = strategy.num_replicas_in_sync
  rows = len(next(iter(batch.values())))
  if rows % replicas:
    raise ValueError("global batch %d does not split over %d replicas" % (rows, replicas))
  local = rows // replicas

  def part(ctx):
    r = ctx.replica_id_in_sync_group
    return {k: tf.constant(v[r * local:(r + 1) * local]) for k, v in batch.items()}

  return strategy.experimental_distribute_values_from_function(part)


@contextlib.contextmanager
def mistake_made(name):
  """A deliberately wrong multi-replica run, for as long as the context lasts."""
  if not name:
    yield
    return
  if name != "no_gather":
    raise ValueError("unknown mistake %r" % name)
  from tfssl import losses
  saved = losses.cross_replica_concat, losses._global_positions  # pylint: disable=protected-access
  losses.cross_replica_concat = lambda tensor: tensor
  losses._global_positions = tf.range  # pylint: disable=protected-access
  try:
    yield
  finally:
    losses.cross_replica_concat, losses._global_positions = saved  # pylint: disable=protected-access


def run(config_values, replicas, batch, steps, init=None, mistake=None, permuted_order=None):
  with mistake_made(mistake):
    return _run(config_values, replicas, batch, steps, init, permuted_order)


def _run(config_values, replicas, batch, steps, init, permuted_order):
  config = Config.make(**config_values, strategy="mirrored" if replicas > 1 else "default",
                       cpu_replicas=replicas if replicas > 1 else 0)
  trainer = Trainer(config)
  if trainer.strategy.num_replicas_in_sync != replicas:
    raise RuntimeError("asked for %d replicas, got %d"
                       % (replicas, trainer.strategy.num_replicas_in_sync))
  task = trainer.build()
  start = init
  if init is not None:
    load_weights(task, init)
  else:
    start = weights(task)
  # The optimizer's starting state (iterations 0, empty slots), to start a second run from it.
  optimizer_start = [v.numpy() for v in trainer.optimizer.variables]

  @tf.function
  def train_step(features):
    trainer.strategy.run(task.train_step, args=(features,))

  def train(rows):
    features = distribute(trainer.strategy, rows)
    out = {}
    for step in range(steps):
      task.reset_metrics()
      train_step(features)
      # Keras metrics are summed over replicas on read, so this is the global batch's mean loss.
      out["loss_%d" % step] = float(task.loss_tracker.result())
    out["global_step"] = trainer.step
    out.update(weights(task))
    return out

  out = train(batch)
  out["init"] = start
  if permuted_order is not None:
    load_weights(task, start)
    for variable, value in zip(trainer.optimizer.variables, optimizer_start):
      variable.assign(value)
    order = np.asarray(permuted_order)
    out["permuted"] = train({k: v[order] for k, v in batch.items()})
  trainer.close()
  return out
