"""Entry point: parse flags -> Config -> train, or --run_eval.

  python -m tfssl.train_and_eval --task=rotation --workdir=W --dataset=imagenet --dataset_dir=D ...
  bash shell/rotation/imagenet.sh --workdir=W --dataset_dir=D [more flags override the flagfile]

Flags are validated before anything heavy starts: a mistake gives one `tfssl: error:` line and
exit code 2.
"""

import os
import re
import sys

from absl import app
from absl import flags
from absl import logging

from tfssl.config import (Config, KNOWN_ARCHITECTURES, KNOWN_PRECISIONS, KNOWN_STRATEGIES, KNOWN_TASKS,
                          define_flags)
from tfssl.runtime.cpu_defaults import apply_cpu_defaults

define_flags()
FLAGS = flags.FLAGS

# Tasks that need no backbone of their own (they load an export).
_EXPORT_TASKS = ("linear_eval", "knn_eval", "finetune")
_CHOICES = {
    "strategy": KNOWN_STRATEGIES, "precision": KNOWN_PRECISIONS,
    "optimizer": ("sgd", "adam", "lars", "larc"), "learning_rate_scaling": ("linear", "sqrt"),
    "conv_kernel_init": ("glorot_uniform", "variance_scaling", "kaiming_fan_out"),
    "lr_schedule": ("piecewise", "cosine"), "mode": ("v1", "v2"),
    "pool_mode": ("adaptive_max", "adaptive_avg", "max", "avg"),
    "combine_patches": ("avg_pool", "max_pool", "concat"), "eval_model": ("linear", "mlp"),
    "tau_schedule": ("cosine", "constant"), "proj_head_mode": ("none", "linear", "nonlinear"),
}
_DATASETS = ("imagenet", "fashion_mnist", "cifar10", "cifar100", "tfrecord")


class UsageError(ValueError):
  """A flag mistake: reported as one line, exit code 2."""


def validate(config):
  """Checks what can be checked without building anything; raises UsageError."""
  c = config
  if not c.task:
    raise UsageError("--task is required; one of: %s" % ", ".join(KNOWN_TASKS))
  if c.task not in KNOWN_TASKS:
    raise UsageError("unknown --task=%s; known tasks: %s" % (c.task, ", ".join(KNOWN_TASKS)))
  if not c.workdir:
    raise UsageError("--workdir is required: the directory for checkpoints, summaries and exports")
  if not c.dataset:
    raise UsageError("--dataset is required: one of %s or tfds:<name>" % ", ".join(_DATASETS))
  if c.dataset not in _DATASETS and not c.dataset.startswith("tfds:"):
    raise UsageError("unknown --dataset=%s; known: %s, or tfds:<name>" % (c.dataset, ", ".join(_DATASETS)))
  if not c.dataset_dir:
    raise UsageError("--dataset_dir is required: the directory of the TFRecord shards "
                     "(make them with python -m tfssl.tools.build_tfrecords)")
  if not c.dataset.startswith("tfds:") and not os.path.isdir(os.path.expanduser(c.dataset_dir)):
    raise UsageError("--dataset_dir=%s does not exist; give the directory of the TFRecord shards" % c.dataset_dir)
  for name, choices in _CHOICES.items():
    value = getattr(c, name)
    if value is not None and value not in choices:
      raise UsageError("unknown --%s=%s; choose one of: %s" % (name, value, ", ".join(choices)))
  if c.task in _EXPORT_TASKS:
    if not c.hub_module and c.task != "knn_eval":
      raise UsageError("--task=%s needs --hub_module=<export dir> (an export/<step> written by --run_eval)" % c.task)
  else:
    if not c.architecture:
      raise UsageError("--architecture is required; one of: %s" % ", ".join(KNOWN_ARCHITECTURES))
    if c.architecture not in KNOWN_ARCHITECTURES:
      raise UsageError("unknown --architecture=%s; known: %s" % (c.architecture, ", ".join(KNOWN_ARCHITECTURES)))
  if c.task != "knn_eval":
    for name in ("batch_size", "lr", "preprocessing"):
      if getattr(c, name) is None:
        raise UsageError("--%s is required for --task=%s" % (name, c.task))
    if not c.epochs and not c.train_steps:
      raise UsageError("give --epochs or --train_steps for --task=%s" % c.task)
    if c.batch_size <= 0:
      raise UsageError("--batch_size must be positive, got %d" % c.batch_size)
  try:
    c.crop_hw, c.resize_hw  # noqa: B018  (parses the size flags)
  except ValueError as e:
    raise UsageError("bad size flag: %s" % e)
  chains = [c.preprocessing, c.knn_preprocessing]
  if any(chains):
    from tfssl.data import preprocess  # imports TensorFlow, but builds nothing
    for chain in chains:
      if chain:
        try:
          preprocess.validate_chain(chain)
        except ValueError as e:
          raise UsageError(str(e))
  if c.task in ("linear_eval", "finetune"):
    from tfssl.data import augment  # registers the contrastive ops; builds nothing
    try:
      augment.check_single_view(c.preprocessing, c.task)
    except ValueError as e:
      raise UsageError(str(e))


def main(argv):
  if len(argv) > 1:
    _usage_exit("unexpected arguments: %s (flags are --name=value)" % " ".join(argv[1:]))
  config = Config.from_flags(FLAGS)
  try:
    validate(config)
  except UsageError as e:
    _usage_exit(str(e))
  # Heavy imports only now, after the flags are known to be sane.
  import tensorflow as tf
  from tfssl.trainer import Trainer
  from tfssl.workdir import WorkdirError
  trainer = None
  try:
    trainer = Trainer(config)
    if config.run_eval:
      trainer.run_eval()
    else:
      trainer.train()
  except WorkdirError as e:
    _error_exit(str(e), code=1)
  except tf.errors.OpError as e:
    message = op_user_error(e)
    if message is None:
      raise
    _error_exit(message, code=1)
  finally:
    if trainer is not None:
      trainer.close()


def op_user_error(err):
  """The message of a tfssl check that failed inside a TensorFlow op (the input pipeline's
  `tfssl: ...` assertions, e.g. a corrupt shard), as one line; None for any other error."""
  match = re.search(r"\[tfssl: (.*?)\]\s*$", err.message or "", re.M)
  if match is None:
    return None
  return match.group(1).replace('\\"', '"')


def _usage_exit(message):
  sys.stderr.write("tfssl: error: %s\n" % message)
  sys.exit(2)


def _error_exit(message, code=1):
  sys.stderr.write("tfssl: error: %s\n" % message)
  sys.exit(code)


def run():
  apply_cpu_defaults()
  logging.set_verbosity(logging.INFO)
  app.run(main)


if __name__ == "__main__":
  run()
