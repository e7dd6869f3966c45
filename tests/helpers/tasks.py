"""A method built on a fixed batch with its optimizer, as the trainer builds it (variables made
by one call on the batch, the optimizer's slots built), for the methods' unit tests."""

from tfssl import optimizers
from tfssl.config import Config
from tfssl.tasks import get_task_class
from tfssl.tasks.base import TaskContext


def make_task(features, steps_per_epoch=5, total_steps=5, num_classes=10, task_class=None,
              **values):
  """The task `values["task"]` (or `task_class`) over Config.make(**values), called once on
  `features`, with build_optimizer's optimizer for a schedule of `total_steps`."""
  config = Config.make(**values)
  cls = task_class or get_task_class(config.task)
  task = cls(config, TaskContext(num_classes=num_classes, steps_per_epoch=steps_per_epoch,
                                 total_steps=total_steps, global_batch_size=config.batch_size))
  task(features, training=False)
  task.optimizer = optimizers.build_optimizer(
      config, optimizers.build_lr_schedule(config, steps_per_epoch, total_steps))
  task.optimizer.build(task.trainable_variables)
  return task
