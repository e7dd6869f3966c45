"""The small real configs the tests train: tiny nets (CIFAR ResNet-18 at width 1 unless a test
needs another), few steps, real Fashion-MNIST records, no save before the end."""

from tfssl.config import Config

# The net of most tests: 11M parameters at width 4 in the papers, 0.7M here.
TINY_NET = dict(architecture="cifar_resnet18", filters_factor=1)

# Run-wide settings of a short test run on the Fashion-MNIST records.
SHORT_RUN = dict(dataset="fashion_mnist", save_checkpoints_secs=3600)

# Four rotation steps at 32 px with summaries every two steps and an export for 32x32 images:
# the run behind the visualisation, console and kNN tests (conftest.rotation_run).
ROTATION = dict(task="rotation", train_split="train", val_split="test", batch_size=8,
                eval_batch_size=64, preprocessing="resize,-1_to_1,rotate",
                knn_preprocessing="resize,-1_to_1", resize_size="32", lr=0.1,
                lr_schedule="cosine", train_steps=4, log_every_steps=2,
                serving_input_shape="None,32,32,3", random_seed=0)


def tiny_values(task=None, workdir=None, dataset_dir=None, **overrides):
  """The Config.make values of a short run of `task` on the tiny net; `overrides` win."""
  values = dict(TINY_NET, **SHORT_RUN)
  if task is not None:
    values["task"] = task
  if workdir is not None:
    values["workdir"] = str(workdir)
  if dataset_dir is not None:
    values["dataset_dir"] = str(dataset_dir)
  values.update(overrides)
  return values


def tiny_config(task=None, workdir=None, dataset_dir=None, **overrides):
  """Config.make(**tiny_values(...))."""
  return Config.make(**tiny_values(task, workdir, dataset_dir, **overrides))
