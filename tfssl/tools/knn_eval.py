"""The kNN command: the seeds' weighted kNN (k=200, weights exp(cos / 0.1)) of a representation.

  python -m tfssl.train_and_eval --task=knn_eval --hub_module=W/export/<step> --workdir=W2 ...
  python -m tfssl.train_and_eval --task=knn_eval --workdir=W ...   # W's newest checkpoint

A command, not a task: it trains nothing. The representation is an export (`--hub_module`) or,
without one, the newest checkpoint in `--workdir` restored into the task rebuilt from that
workdir's flags.json (tfssl.models.representation). The bank is the train split, the queries the
val split, both with the evaluation chain (`--knn_preprocessing`, else the training run's / this
run's `--preprocessing` in eval mode); the features are the `--knn_end_point` end point (4-D ones
are average-pooled). Results {"knn_top1_<end point>", "knn_top5_<end point>"} are returned and
appended to `--workdir`'s eval_results.json.
"""

import tensorflow as tf

from tfssl.data import datasets
from tfssl.evaluation import knn
from tfssl.models import representation as representation_lib
from tfssl.workdir import Workdir, training_config

# The flags of this run that win over the training run's when a checkpoint is rebuilt: the data
# and the kNN's own; the network and its preprocessing are the training run's.
_DATA_FLAGS = ("dataset", "dataset_dir", "train_split", "val_split", "eval_batch_size", "strategy")


def load_representation(config):
  """The Representation knn_eval reads: --hub_module's export, else --workdir's newest checkpoint
  (its `.config` is then the training run's, with this run's data flags)."""
  if config.hub_module:
    return representation_lib.from_export(config.hub_module)
  from tfssl.trainer import Trainer
  if not config.workdir or not tf.train.latest_checkpoint(config.workdir):
    raise ValueError("--task=knn_eval: give --hub_module=<export dir>, or a --workdir holding a "
                     "training run's checkpoints and flags.json (%s has none)" % config.workdir)
  train_config = training_config(config.workdir,
                                 **{k: getattr(config, k) for k in _DATA_FLAGS if getattr(config, k)})
  if train_config.task == "knn_eval":
    raise ValueError("--workdir %s holds a knn_eval run, which has no network" % config.workdir)
  return Trainer(train_config).restored_representation()


def _check_input_size(rep, batches, chain):
  """An export built for fixed-size images refuses others deep inside its graph; say it first."""
  expected = rep.input_shape[1:3] if rep.input_shape else None
  if not expected or None in expected:
    return
  got = list(next(iter(batches.take(1)))["image"].shape[1:3])
  if got != list(expected):
    raise ValueError("the evaluation chain %r gives %dx%d images and the export at %s takes %dx%d: "
                     "pass --knn_preprocessing with that size (e.g. --image_size=%d or "
                     "--resize_size=%d)" % (chain, got[0], got[1], rep.source, expected[0],
                                            expected[1], expected[0], expected[0]))


def run(config):
  """Evaluates and records; returns the results dict."""
  rep = load_representation(config)
  data_config = rep.config or config
  chain = config.knn_preprocessing or data_config.preprocessing
  if not chain:
    raise ValueError("--task=knn_eval needs an evaluation chain: pass --knn_preprocessing "
                     "(e.g. center_crop_resize or 0_to_1) or --preprocessing")
  spec = datasets.get_dataset(data_config.dataset, data_config.dataset_dir)
  if not spec.labeled:
    raise ValueError("%s holds images without labels, and kNN accuracy compares labels: evaluate "
                     "on a labelled dataset (--dataset_dir)" % data_config.dataset_dir)

  def batches(split):
    return datasets.make_input_fn(data_config, split, False, preprocessing=chain,
                                  dataset=spec)(None)

  bank = batches(config.train_split)
  _check_input_size(rep, bank, chain)
  if config.knn_max_train_examples:
    bank = bank.unbatch().take(config.knn_max_train_examples).batch(data_config.eval_batch_size)
  result = knn.knn_accuracy(tf.function(rep.fn), bank, batches(config.val_split),
                            config.knn_end_point, spec.num_classes, k=config.knn_k,
                            temperature=config.knn_temperature)
  results = {"knn_top1_%s" % config.knn_end_point: float(result["top1"]),
             "knn_top5_%s" % config.knn_end_point: float(result["top5"])}
  tf.io.gfile.makedirs(config.workdir)
  Workdir(config.workdir, config).append_result(dict(kind="knn_eval", source=rep.source, **results))
  return results
