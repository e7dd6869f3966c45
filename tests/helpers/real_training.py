"""Shared scaffolding of the "a few steps on real Fashion-MNIST lower the loss" tests.

- losses_on_one_real_batch: a task built on one fixed batch of real records (as the trainer builds
  it) and trained on that batch only; for the pretext tasks, whose loss on one batch must fall.
- train_flagfile_and_score: a contrastive method's fashion_mnist flagfile run through the Trainer
  for a few steps; the method's loss on one fixed batch of views is scored before and after.
"""

import keras
import tensorflow as tf

from tfssl.tasks.base import TaskContext


def losses_on_one_real_batch(task_class, config, steps, seed=0):
  """(batch, [training loss after each of `steps` train_steps on that one batch])."""
  from tfssl import optimizers
  from tfssl.data import datasets
  keras.utils.set_random_seed(seed)
  batch = next(iter(datasets.make_input_fn(config, "train", True)(None)))
  task = task_class(config, TaskContext(num_classes=10))
  task(batch, training=False)
  task.optimizer = optimizers.build_optimizer(config, optimizers.build_lr_schedule(config, 1, steps))
  step = tf.function(task.train_step)
  losses = []
  for _ in range(steps):
    task.loss_tracker.reset_state()
    step(batch)
    losses.append(float(task.loss_tracker.result()))
  return batch, losses


def train_flagfile_and_score(repo_root, task, dataset_dir, workdir, steps=40, **overrides):
  """(trainer, loss before, loss after): flags/<task>/fashion_mnist.cfg at batch 32 for `steps`.

  The loss is the task's batch_loss on one fixed batch of training-mode views of the val split.
  """
  from tfssl.data import datasets
  from tfssl.tools.experiment import config_from_flagfile
  from tfssl.trainer import Trainer
  # float32 whatever the flagfile's --precision=auto picks on this CPU: the scores compare numbers.
  values = dict(workdir=str(workdir), dataset_dir=dataset_dir, batch_size=32, train_steps=steps,
                warmup_epochs=0, random_seed=1, log_every_steps=20, precision="fp32")
  values.update(overrides)
  config = config_from_flagfile(str(repo_root / "flags" / task / "fashion_mnist.cfg"), **values)
  trainer = Trainer(config)
  trainer.build()
  batch = next(iter(datasets.make_input_fn(config, "val", True, batch_size=64)(None)))
  before = float(trainer.task.batch_loss(batch)[0])
  trainer.train()
  after = float(trainer.task.batch_loss(batch)[0])
  return trainer, before, after
