"""The one-process reference of a multi-worker run, run in its own interpreter.

  python tests/pipeline_reference.py SPEC.json

A run over W workers reads different files on each worker (pipeline i reads shards i, i + W, ...),
so a plain one-process run sees other examples. This reference instead reads exactly what each
worker's input pipeline gives it (make_input_fn with that worker's InputContext) and trains one
replica on the workers' batches side by side: the same global batch, in the same rows.

It also writes the starting point: a checkpoint at step 0 in the multi-worker run's workdir, which
every worker restores, so both runs start from the same weights by construction.

SPEC: config (Config fields, the workers' flags), workers (W), steps, out (.npz written at the end:
loss_<step>, w_<i> / name_<i> of every task weight, in the order the trainer checkpoints them).
"""

import json
import sys

from tfssl.runtime.cpu_defaults import apply_cpu_defaults

apply_cpu_defaults()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfssl.config import Config  # noqa: E402
from tfssl.data import datasets  # noqa: E402
from tfssl.trainer import Trainer  # noqa: E402


def worker_batches(config, workers):
  """Iterators over the training batches of each worker's input pipeline."""
  fn = datasets.make_input_fn(config, config.train_split, is_training=True)
  return [iter(fn(tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=i,
                                             num_replicas_in_sync=workers)))
          for i in range(workers)]


def main(spec_path):
  with open(spec_path) as f:
    spec = json.load(f)
  config = Config.make(**spec["config"], strategy="default", cpu_replicas=0)
  trainer = Trainer(config)
  task = trainer.build()
  trainer.workdir.claim()
  trainer.workdir.save(trainer.workdir.checkpoint_manager(trainer.checkpoint, None), 0)

  @tf.function
  def train_step(features):
    trainer.strategy.run(task.train_step, args=(features,))

  pipelines = worker_batches(config, int(spec["workers"]))
  out = {}
  for step in range(int(spec["steps"])):
    parts = [next(p) for p in pipelines]
    batch = {k: tf.concat([p[k] for p in parts], axis=0) for k in parts[0]}
    task.reset_metrics()
    train_step(batch)
    out["loss_%d" % step] = float(task.loss_tracker.result())
  for i, variable in enumerate(task.weights):
    out["w_%d" % i] = variable.numpy()
    out["name_%d" % i] = variable.path
  out["global_step"] = trainer.step
  np.savez(spec["out"], **out)
  trainer.close()


if __name__ == "__main__":
  main(sys.argv[1])
