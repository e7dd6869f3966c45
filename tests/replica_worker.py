"""One side of the replica-equivalence proof, run in its own interpreter.

  python tests/replica_worker.py SPEC.json

Device configuration (--cpu_replicas) is process-global and frozen once TensorFlow starts, so a
one-replica run and a two-replica run cannot share a process. SPEC holds:
  config     Config fields (task, net, optimizer, ...); `replicas` sets strategy and cpu_replicas
  replicas   1 (the default strategy) or N (MirroredStrategy over N logical CPUs)
  batch      .npz of the fixed global batch, fed whole to one replica or split in order across N
  init       .npz of initial weights to load, or null to save this run's own to `init_out`
  steps      how many training steps
  mistake    optional, to prove the comparison can fail: "no_gather" computes SimCLR's NT-Xent
             over each replica's own negatives only
  permuted   optional {"order": a permutation of the batch's rows, "out": .npz}: after the run,
             the same run again from the same start on the batch with its rows permuted (the same
             model in exact arithmetic: every loss and statistic is a mean over rows, only the
             order of the sums changes), written like `out`
  out        .npz written at the end: loss_<step>, and w_<i> / name_<i> of every task weight
"""

import json
import sys

from tfssl.runtime.cpu_defaults import apply_cpu_defaults

apply_cpu_defaults()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfssl.config import Config  # noqa: E402
from tfssl.trainer import Trainer  # noqa: E402


def weight_names(task):
  return [v.path for v in task.weights]


def save_weights(task, path):
  arrays = {"w_%d" % i: v.numpy() for i, v in enumerate(task.weights)}
  names = {"name_%d" % i: n for i, n in enumerate(weight_names(task))}
  np.savez(path, **arrays, **names)


def load_weights(task, path):
  saved = np.load(path)
  names = weight_names(task)
  for i, variable in enumerate(task.weights):
    if str(saved["name_%d" % i]) != names[i]:
      raise RuntimeError("weight %d is %s here but %s in %s" % (i, names[i], saved["name_%d" % i],
                                                                path))
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


def make_mistake(name):
  """A deliberately wrong multi-replica run: what the equivalence proof must catch."""
  if name == "no_gather":
    from tfssl import losses
    losses.cross_replica_concat = lambda tensor: tensor
    losses._global_positions = tf.range  # pylint: disable=protected-access
  elif name:
    raise ValueError("unknown mistake %r" % name)


def main(spec_path):
  with open(spec_path) as f:
    spec = json.load(f)
  make_mistake(spec.get("mistake"))
  replicas = int(spec["replicas"])
  config = Config.make(**spec["config"], strategy="mirrored" if replicas > 1 else "default",
                       cpu_replicas=replicas if replicas > 1 else 0)
  trainer = Trainer(config)
  if trainer.strategy.num_replicas_in_sync != replicas:
    raise RuntimeError("asked for %d replicas, got %d"
                       % (replicas, trainer.strategy.num_replicas_in_sync))
  task = trainer.build()
  if spec.get("init"):
    load_weights(task, spec["init"])
  else:
    save_weights(task, spec["init_out"])

  # The optimizer's starting state (iterations 0, empty slots), to start a second run from it.
  optimizer_start = [v.numpy() for v in trainer.optimizer.variables]

  @tf.function
  def train_step(features):
    trainer.strategy.run(task.train_step, args=(features,))

  def run(batch, out_path):
    features = distribute(trainer.strategy, batch)
    losses = {}
    for step in range(int(spec["steps"])):
      task.reset_metrics()
      train_step(features)
      # Keras metrics are summed over replicas on read, so this is the global batch's mean loss.
      losses["loss_%d" % step] = float(task.loss_tracker.result())
    losses["global_step"] = trainer.step
    save_weights(task, out_path)
    with np.load(out_path) as saved:
      out = dict(saved)
    np.savez(out_path, **out, **losses)

  batch = dict(np.load(spec["batch"]))
  run(batch, spec["out"])
  if spec.get("permuted"):
    # The same run again from the same start, on the batch with its rows permuted.
    load_weights(task, spec.get("init") or spec["init_out"])
    for variable, value in zip(trainer.optimizer.variables, optimizer_start):
      variable.assign(value)
    order = np.asarray(spec["permuted"]["order"])
    run({k: v[order] for k, v in batch.items()}, spec["permuted"]["out"])
  trainer.close()


if __name__ == "__main__":
  main(sys.argv[1])
