"""Entry point: parse flags -> Config -> train, or --run_eval.

  python -m tfssl.train_and_eval --task=rotation --workdir=W --dataset=imagenet --dataset_dir=D ...
  bash shell/rotation/imagenet.sh --workdir=W --dataset_dir=D [more flags override the flagfile]

Flags are validated before anything heavy starts: a mistake gives one `tfssl: error:` line and
exit code 2 (so does a workdir another training run holds); a problem with the workdir or the data
while running: exit code 1; a step that is not finite: 3; SIGTERM or Ctrl-C, after saving the step
reached: 143 or 130 (README, "The console and exit codes"). `--help` shows the
flags to start with, `--helpfull` every flag (also in docs/FLAGS.md).
"""

import importlib
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging

from tfssl.config import ALL_FLAGS, Config, define_flags, flag_spec
from tfssl.runtime.console import (error_line, flags_parser, quiet_tensorflow_banner,
                                   use_short_log_lines)
from tfssl.runtime.cpu_defaults import apply_cpu_defaults

define_flags()
FLAGS = flags.FLAGS
# The command's own flags (not part of a run's Config).
flags.DEFINE_string("config", None, "A shipped config by name, task/dataset (e.g. simclr/imagenet; "
                    "--list_configs shows them): read as --flagfile, the flags given override it.")
flags.DEFINE_bool("list_configs", False, "Print every shipped config (task/dataset and what it is) "
                  "and exit.")
flags.DEFINE_bool("version", False, "Print tfssl's version and exit.")

# `--task=` values that are commands rather than trainable tasks (name -> "module:function").
COMMANDS = {"knn_eval": "tfssl.tools.knn_eval:run"}
# Comma-separated modules imported before the flags are parsed: methods and datasets from outside
# the package register themselves there (README, "Adding a method").
PLUGINS_ENV = "TFSSL_PLUGINS"
# The flags a newcomer needs first: `--help` shows these, `--helpfull` every flag.
KEY_FLAGS = ("config", "list_configs", "task", "workdir", "dataset", "dataset_dir", "architecture",
             "batch_size", "lr", "train_steps", "epochs", "preprocessing", "run_eval", "hub_module",
             "strategy", "precision", "version")


class UsageError(ValueError):
  """A flag mistake: reported as one line, exit code 2."""


def _check_choices(config):
  """Every flag whose values a registry owns (FlagSpec.choices) holds one of them. --task (which
  also takes the commands) and --dataset (also tfds:<any name>) are checked by validate itself."""
  for spec in ALL_FLAGS:
    value = getattr(config, spec.name)
    if spec.choices is None or value is None or spec.name in ("task", "dataset"):
      continue
    allowed = spec.allowed()
    if value not in allowed:
      raise UsageError("unknown --%s=%s; choose one of: %s" % (spec.name, value, ", ".join(allowed)))


def validate(config):
  """Checks what can be checked without building anything; raises UsageError."""
  from tfssl.data import datasets  # the registries import TensorFlow, but build nothing
  from tfssl.tasks import get_task_class, task_names
  c = config
  known_tasks = task_names() + sorted(COMMANDS)
  if not c.task:
    raise UsageError("--task is required; one of: %s" % ", ".join(known_tasks))
  if c.task not in known_tasks:
    raise UsageError("unknown --task=%s; known tasks: %s" % (c.task, ", ".join(known_tasks)))
  if not c.workdir:
    raise UsageError("--workdir is required: the directory for checkpoints, summaries and exports")
  if not c.dataset:
    raise UsageError("--dataset is required: one of %s" % ", ".join(datasets.known_datasets()))
  if not datasets.is_known(c.dataset):
    raise UsageError("unknown --dataset=%s; known: %s" % (c.dataset, ", ".join(datasets.known_datasets())))
  if not c.dataset_dir:
    raise UsageError("--dataset_dir is required: the directory of the TFRecord shards "
                     "(make them with python -m tfssl.tools.build_tfrecords)")
  if not c.dataset.startswith("tfds:") and not os.path.isdir(os.path.expanduser(c.dataset_dir)):
    raise UsageError("--dataset_dir=%s does not exist; give the directory of the TFRecord shards" % c.dataset_dir)
  _check_choices(c)
  task_cls = None if c.task in COMMANDS else get_task_class(c.task)
  if task_cls is not None:
    # Every missing setting at once, not one per run.
    missing = []
    if task_cls.READS_EXPORT and not c.hub_module:
      missing.append("--hub_module=<export dir> (an export/<step> written by --run_eval)")
    if not task_cls.READS_EXPORT and not c.architecture:
      missing.append("--architecture (%s)" % ", ".join(flag_spec("architecture").allowed()))
    missing += ["--%s" % name for name in ("batch_size", "lr", "preprocessing")
                if getattr(c, name) is None]
    if not c.epochs and not c.train_steps:
      missing.append("--epochs or --train_steps")
    if missing:
      raise UsageError("--task=%s needs %s (or a --flagfile that sets them)"
                       % (c.task, ", ".join(missing)))
    if c.batch_size <= 0:
      raise UsageError("--batch_size must be positive, got %d" % c.batch_size)
  if not 0.0 < float(c.crop_min_area) <= 1.0:
    raise UsageError("--crop_min_area=%g must be in (0, 1]: the smallest share of the image a crop "
                     "covers (the papers' 0.08)" % c.crop_min_area)
  if c.root_conv_stride is not None:
    if c.root_conv_stride < 1:
      raise UsageError("--root_conv_stride=%d must be positive: 2 is the original's, 1 keeps twice "
                       "the resolution" % c.root_conv_stride)
    from tfssl.models.factory import WITHOUT_ROOT_CONV
    if c.architecture in WITHOUT_ROOT_CONV:
      raise UsageError("--root_conv_stride does nothing on --architecture=%s (no 7x7 stem): use "
                       "resnet18, resnet50 or revnet50, or drop the flag" % c.architecture)
  try:
    c.crop_hw, c.resize_hw  # noqa: B018  (parses the size flags)
  except ValueError as e:
    raise UsageError("bad size flag: %s" % e)
  chains = [c.preprocessing, c.knn_preprocessing]
  if any(chains):
    from tfssl.data import preprocess
    for chain in chains:
      if chain:
        try:
          preprocess.validate_chain(chain)
        except ValueError as e:
          raise UsageError(str(e))
  if task_cls is not None:
    from tfssl.tasks.views import check_chain_views
    try:
      check_chain_views(task_cls, c.task, c)
    except ValueError as e:
      raise UsageError(str(e))
  if c.augment_on_device and c.preprocessing:
    from tfssl.data import preprocess
    if not preprocess.defers_colour(c.preprocessing):
      raise UsageError("--augment_on_device: --preprocessing=%s has no view op whose colour runs "
                       "in the train step (%s); drop the flag" % (
                           c.preprocessing, ", ".join(preprocess.defers_colour(
                               preprocess.known_ops()))))


def _resolve(path):
  module, attribute = path.split(":")
  return getattr(importlib.import_module(module), attribute)


def preflight(config):
  """The checks that read the disk, before anything is built or written: the export and the shard
  files the run reads exist. ValueError naming the thing and the fix."""
  from tfssl.data import datasets
  if config.hub_module and not os.path.exists(os.path.join(config.hub_module, "saved_model.pb")):
    raise ValueError("--hub_module=%s holds no saved_model.pb: give an export/<step> directory "
                     "written by --run_eval" % config.hub_module)
  if config.dataset.startswith(datasets.TFDS_PREFIX):
    return
  spec = datasets.get_dataset(config.dataset, config.dataset_dir)
  splits = [config.val_split] if config.run_eval else [config.train_split]
  if config.task in COMMANDS:
    splits = [config.train_split, config.val_split]
  for split in splits:
    spec.files(split)


def with_export_eval_view(config, given):
  """With --hub_module, the evaluation image the export recorded (models/export.py) for the chain
  and size flags the run did not give (`given(name)`): linear_eval and finetune read it as
  --preprocessing, knn_eval as --knn_preprocessing. Said in one line."""
  if not config.hub_module or not os.path.isdir(config.hub_module):
    return config
  from tfssl.models.export import read_eval_view
  record = read_eval_view(config.hub_module)
  if not record or not record.get("chain"):
    return config
  chain_flag = "knn_preprocessing" if config.task == "knn_eval" else "preprocessing"
  updates = {k: v for k, v in record.get("flags", {}).items() if not given(k)}
  if not given(chain_flag):
    updates[chain_flag] = record["chain"]
  if not updates:
    return config
  sys.stderr.write("tfssl: from the export's recorded evaluation image: %s\n" % "  ".join(
      "--%s=%s" % kv for kv in sorted(updates.items())))
  return config.replace(**updates)


def main(argv):
  if len(argv) > 1:
    _usage_exit("unexpected arguments: %s (flags are --name=value)" % " ".join(argv[1:]))
  if FLAGS.version:
    from tfssl import __version__
    print("tfssl %s" % __version__)
    return
  if FLAGS.list_configs:
    from tfssl import flagfiles
    print(flagfiles.listing())
    return
  config = with_export_eval_view(Config.from_flags(FLAGS), lambda name: FLAGS[name].present)
  try:
    validate(config)
  except UsageError as e:
    _usage_exit(str(e))
  # Heavy imports only now, after the flags are known to be sane.
  import tensorflow as tf
  from tfssl.runtime.workdir_lock import WorkdirLocked
  from tfssl.trainer import NONFINITE_EXIT_CODE, Trainer, TrainingStopped
  from tfssl.workdir import WorkdirError
  trainer = None
  try:
    preflight(config)
    if config.task in COMMANDS:
      _resolve(COMMANDS[config.task])(config)
      return
    trainer = Trainer(config)
    if config.run_eval:
      trainer.run_eval()
    else:
      trainer.train()
  except WorkdirLocked as e:
    _usage_exit(str(e))  # another run holds the workdir: nothing was written
  except WorkdirError as e:
    _error_exit(str(e), code=1)
  except TrainingStopped as e:
    # A non-finite step (exit 3) or SIGTERM / Ctrl-C after saving (143 / 130).
    _error_exit(str(e), code=e.exit_code,
                prefix="tfssl: error:" if e.exit_code == NONFINITE_EXIT_CODE else "tfssl:")
  except ValueError as e:
    # tfssl's checks of what the user gave (a folder, an export, a chain, a split) raise
    # ValueError with a message naming the thing and the fix. TFSSL_TRACEBACK=1 shows where.
    if os.environ.get("TFSSL_TRACEBACK") == "1":
      raise
    _usage_exit(error_line(str(e)) or type(e).__name__)
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


def _error_exit(message, code=1, prefix="tfssl: error:"):
  sys.stderr.write("%s %s\n" % (prefix, message))
  sys.exit(code)


def load_plugins(names=None):
  """Imports the modules named in $TFSSL_PLUGINS (or `names`), so that the tasks, flags, datasets
  and preprocessing ops they register exist before the command line is parsed."""
  names = os.environ.get(PLUGINS_ENV, "") if names is None else names
  for name in [n.strip() for n in names.split(",") if n.strip()]:
    try:
      importlib.import_module(name)
    except ImportError as e:
      _usage_exit("%s=%s: cannot import %s (%s); put its folder on PYTHONPATH"
                  % (PLUGINS_ENV, names, name, e))


from tfssl.flagfiles import FLAGS_DIR  # noqa: E402  (the shipped configs, tfssl/flagfiles.py)


def _flag_value(argv, name):
  """The last value given to --name in argv (`--name=v` or `--name v`), or None."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith("--%s=" % name):
      value = arg.split("=", 1)[1]
    elif arg == "--%s" % name and i + 1 < len(argv):
      value = argv[i + 1]
  return value


# Without these a run cannot start; a command line that gives them all is complete as it is.
_SETTINGS = ("architecture", "batch_size", "lr", "preprocessing")


def default_flagfile(argv, flags_dir=FLAGS_DIR):
  """For `--task=T` without --flagfile and without the settings a run needs: the task's original
  config to take the rest from, flags/T/<--dataset>.cfg when there is one, else
  flags/T/imagenet.cfg; None if there is none (or nothing is missing)."""
  if any(a == "--flagfile" or a.startswith("--flagfile=") for a in argv):
    return None
  if all(_flag_value(argv, name) is not None for name in _SETTINGS):
    return None
  task = _flag_value(argv, "task")
  if not task or task in COMMANDS:
    return None
  dataset = _flag_value(argv, "dataset")
  for name in ([dataset] if dataset else []) + ["imagenet"]:
    path = os.path.join(flags_dir, task, "%s.cfg" % name)
    if os.path.isfile(path):
      return path
  return None


def with_packaged_configs(argv):
  """argv with `--config=task/dataset` as `--flagfile=<its file>`, and a `--flagfile=` that is no
  file but names a shipped config pointed at it; one usage line when it is neither."""
  from tfssl import flagfiles
  out = []
  args = iter(argv)
  for arg in args:
    name, value = None, None
    for flag in ("config", "flagfile"):
      if arg.startswith("--%s=" % flag):
        name, value = flag, arg.split("=", 1)[1]
      elif arg == "--%s" % flag:
        name, value = flag, next(args, "")
    if name is None:
      out.append(arg)
      continue
    if name == "config":
      path = flagfiles.path_of(value)
      if path is None:
        _usage_exit("--config=%s: no shipped config of that name; `tfssl-train --list_configs` "
                    "shows them (task/dataset, e.g. simclr/fashion_mnist)" % value)
    else:
      try:
        path = flagfiles.resolve(value)
      except ValueError as e:
        _usage_exit("--flagfile=%s: %s" % (value, e))
    out.append("--flagfile=" + path)
  return out


def with_default_flagfile(argv):
  """argv with the task's flagfile put first (the flags given still override it), said in one line;
  shipped configs named by --config or --flagfile resolved first (with_packaged_configs)."""
  argv = with_packaged_configs(argv)
  path = default_flagfile(argv[1:])
  if path is None:
    return argv
  shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
  sys.stderr.write("tfssl: --task=%s without a --flagfile: its other settings come from %s (the "
                   "flags given here override them)\n" % (_flag_value(argv, "task"), shown))
  return [argv[0], "--flagfile=" + path] + list(argv[1:])


def run():
  apply_cpu_defaults()
  quiet_tensorflow_banner()
  load_plugins()
  define_flags()  # the plugins' flags, registered after this module's import
  for name in KEY_FLAGS:  # what --help shows first (--helpfull: every flag)
    flags.declare_key_flag(name)
  logging.set_verbosity(logging.INFO)
  use_short_log_lines()
  app.run(main, argv=with_default_flagfile(sys.argv), flags_parser=flags_parser(
      "tfssl: error:", "python -m tfssl.train_and_eval --helpfull lists every flag"))


if __name__ == "__main__":
  run()
