"""The one-process reference of a multi-worker run.

A run over W workers reads different files on each worker (pipeline i reads shards i, i + W, ...),
so a plain one-process run sees other examples. This reference instead reads exactly what each
worker's input pipeline gives it (make_input_fn with that worker's InputContext) and trains one
replica on the workers' batches side by side: the same global batch, in the same rows.

It also writes the starting point: a checkpoint at step 0 in the multi-worker run's workdir, which
every worker restores, so both runs start from the same weights by construction. It runs in the
test's own process (one replica, the default strategy); only the workers are processes.
"""

import tensorflow as tf

from tfssl.config import Config
from tfssl.data import datasets
from tfssl.trainer import Trainer
from helpers.replica_run import weights


def worker_batches(config, workers):
  """Iterators over the training batches of each worker's input pipeline."""
  fn = datasets.make_input_fn(config, config.train_split, is_training=True)
  return [iter(fn(tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=i,
                                             num_replicas_in_sync=workers)))
          for i in range(workers)]


def reference_run(values, workers, steps):
  """Trains `steps` steps of Config.make(**values) on the workers' batches side by side; returns
  {"loss_<step>", "w_<i>", "name_<i>" of every task weight in checkpoint order, "global_step"}."""
  config = Config.make(**values, strategy="default", cpu_replicas=0)
  trainer = Trainer(config)
  task = trainer.build()
  trainer.workdir.claim()
  trainer.workdir.save(trainer.workdir.checkpoint_manager(trainer.checkpoint, None), 0)

  @tf.function
  def train_step(features):
    trainer.strategy.run(task.train_step, args=(features,))

  pipelines = worker_batches(config, workers)
  out = {}
  for step in range(steps):
    parts = [next(p) for p in pipelines]
    batch = {k: tf.concat([p[k] for p in parts], axis=0) for k in parts[0]}
    task.reset_metrics()
    train_step(batch)
    out["loss_%d" % step] = float(task.loss_tracker.result())
  out.update(weights(task))
  out["global_step"] = trainer.step
  trainer.close()
  return out
