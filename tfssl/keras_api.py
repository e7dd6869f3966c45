"""Training the Keras way: a compiled task, its dataset, and `fit`.

    import tfssl
    config = tfssl.config_from_flagfile("flags/simclr/fashion_mnist.cfg", dataset_dir="data/fashion_mnist")
    task = tfssl.build_task(config)                  # a compiled keras.Model (inside a strategy scope
    task.fit(tfssl.training_dataset(config),         # if you use one)
             epochs=1, steps_per_epoch=100, callbacks=[...])
    encoder = task.encoder()                         # keras.Model: images -> end points

The task is the same object, with the same train_step, that the estimator-style trainer drives
(tfssl/trainer.py builds it through `create_task` here): `fit` and the trainer take the same steps
from the same seed. What the trainer adds is its workdir (resume, --run_eval, exports) and the
runtime (strategies from flags, NPU, --cpu_replicas); with `fit`, Keras's callbacks do that work
(tfssl.BackupAndRestore: Keras's, saving on SIGTERM too; ModelCheckpoint, TensorBoard).
"""

import dataclasses
import math
from typing import Optional

import tensorflow as tf

from tfssl import optimizers
from tfssl.config import config_from_flagfile  # noqa: F401  (part of this API)
from tfssl.data import datasets
from tfssl.tasks import get_task_class
from tfssl.tasks.base import TaskContext


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
  """How long a run is: the records it trains on, its epoch and its last step."""
  subset: Optional[object]  # tfssl.data.subsets.Subset for fine-tuning on labelled subsets, or None
  steps_per_epoch: int
  total_steps: int


def check_labels(config, dataset_spec):
  """ValueError (one line naming the fix) when the run reads labels the dataset does not have."""
  if getattr(dataset_spec, "labeled", True):
    return
  reader = get_task_class(config.task).needs_labels(config) if config.task else None
  if reader is None and config.knn_every_epochs:
    reader = "--knn_every_epochs"
  if reader is None:
    return
  fixes = {"--task": "pretrain with a task that needs none (rotation, simclr, ...)",
           "--lineareval_while_pretraining": "pass --nolineareval_while_pretraining",
           "--knn_every_epochs": "pass --knn_every_epochs=0"}
  raise ValueError("%s holds images without labels, and %s reads labels (--task=%s): %s" % (
      getattr(dataset_spec, "dataset_dir", dataset_spec.name), reader, config.task, fixes[reader]))


def training_plan(config, dataset_spec):
  check_labels(config, dataset_spec)
  batch = config.batch_size or 1
  # Fine-tuning trains on a labelled subset: its epochs are the subset's.
  subset = get_task_class(config.task).training_subset(config, dataset_spec) if config.task else None
  count = subset.num_examples if subset is not None else dataset_spec.count(config.train_split)
  steps_per_epoch = max(1, count // batch)
  if config.train_steps:
    total = int(config.train_steps)
  else:
    total = int(math.ceil((config.epochs or 0) * steps_per_epoch))
  return TrainingPlan(subset, steps_per_epoch, total)


def create_task(config, dataset_spec, plan):
  """The task with every variable created and its optimizer built and compiled in, in the current
  strategy scope (the caller enters it): the one way both `build_task` and the trainer make it."""
  if config.random_seed is not None:
    tf.keras.utils.set_random_seed(config.random_seed)
  ctx = TaskContext(num_classes=dataset_spec.num_classes, steps_per_epoch=plan.steps_per_epoch,
                    total_steps=max(1, plan.total_steps), global_batch_size=config.batch_size or 1)
  task = get_task_class(config.task)(config, ctx)
  tiny = datasets.make_input_fn(config, config.train_split, True, batch_size=2, subset=plan.subset,
                                dataset=dataset_spec)(None)
  task(task.finish_views(next(iter(tiny.take(1)))), training=False)  # builds the variables
  schedule = optimizers.build_lr_schedule(config, plan.steps_per_epoch, max(1, plan.total_steps))
  optimizer = optimizers.build_optimizer(config, schedule,
                                         no_weight_decay=task.no_weight_decay_variables(),
                                         not_adapted=task.not_adapted_variables())
  # No loss or metrics: the task's train_step computes its own and returns its logs.
  task.compile(optimizer=optimizer, jit_compile=bool(config.jit_compile),
               steps_per_execution=int(config.steps_per_execution or 1))
  optimizer.build(task.trainable_variables)
  return task


def build_task(config):
  """A compiled task (keras.Model) for `config`, ready for `fit`; call it inside
  `strategy.scope()` to train on several replicas."""
  spec = datasets.get_dataset(config.dataset, config.dataset_dir)
  return create_task(config, spec, training_plan(config, spec))


def training_dataset(config):
  """The training input of `config` as one tf.data.Dataset of global batches (shuffled, repeated
  forever, preprocessed): pass `steps_per_epoch` to fit."""
  spec = datasets.get_dataset(config.dataset, config.dataset_dir)
  plan = training_plan(config, spec)
  return datasets.make_input_fn(config, config.train_split, True, subset=plan.subset,
                                dataset=spec)(None)


def evaluation_dataset(config):
  """One ordered pass over --val_split with the training chain in eval mode: for `evaluate`."""
  return datasets.make_input_fn(config, config.val_split, False)(None)
