"""`--task=knn_eval`: the seeds' weighted kNN (k=200, weights exp(cos / 0.1)) of a representation.

The representation is an export (`--hub_module`, e.g. <workdir>/export/<step>) or, without one,
the newest checkpoint in `--workdir`, rebuilt from that workdir's flags.json. The bank is the
train split, the queries the val split, both with the evaluation preprocessing
(`--knn_preprocessing`, else the training run's / this run's `--preprocessing` in eval mode), and
the features are the `--knn_end_point` end point (4-D ones are average-pooled). Results:
{"knn_top1_<end point>", "knn_top5_<end point>"}, also appended to the workdir's eval_results.json
by the trainer.
"""

import json
import os

import tensorflow as tf

from tfssl.config import Config
from tfssl.data import datasets
from tfssl.evaluation import knn
from tfssl.tasks.base import Task, TaskContext


class KnnEval(Task):
  TRAINS = False

  def call(self, features, training=False):
    raise NotImplementedError("knn_eval has no network of its own; it runs through run_standalone")

  def run_standalone(self, trainer):
    cfg = self.config
    if cfg.hub_module:
      representation, data_cfg = self._export(cfg.hub_module), cfg
    else:
      representation, data_cfg = self._checkpoint(trainer)
    chain = cfg.knn_preprocessing or data_cfg.preprocessing
    if not chain:
      raise ValueError("--task=knn_eval needs an evaluation chain: pass --knn_preprocessing "
                       "(e.g. center_crop_resize or 0_to_1) or --preprocessing")

    def dataset(split):
      return datasets.make_input_fn(data_cfg, split, False, preprocessing=chain)(None)

    bank_ds = dataset(cfg.train_split)
    if cfg.knn_max_train_examples:
      bank_ds = bank_ds.unbatch().take(cfg.knn_max_train_examples).batch(data_cfg.eval_batch_size)
    rep = tf.function(lambda images: representation(images, training=False))
    bank, bank_labels = knn.extract_features(rep, bank_ds, cfg.knn_end_point)
    queries, query_labels = knn.extract_features(rep, dataset(cfg.val_split), cfg.knn_end_point)
    result = knn.weighted_knn(bank, bank_labels, queries, query_labels,
                              trainer.dataset_spec.num_classes, k=cfg.knn_k,
                              temperature=cfg.knn_temperature)
    return {"knn_top1_%s" % cfg.knn_end_point: float(result["top1"]),
            "knn_top5_%s" % cfg.knn_end_point: float(result["top5"])}

  @staticmethod
  def _export(path):
    from tfssl.models.export import load_export
    return load_export(path).representation

  def _checkpoint(self, trainer):
    """The training task of --workdir with its newest checkpoint; its Config for the data ops."""
    cfg = self.config
    path = tf.train.latest_checkpoint(cfg.workdir) if cfg.workdir else None
    flags_file = os.path.join(cfg.workdir or "", "flags.json")
    if not path or not tf.io.gfile.exists(flags_file):
      raise ValueError("--task=knn_eval: give --hub_module=<export dir>, or a --workdir holding a "
                       "training run's checkpoints and flags.json (%s has none)" % cfg.workdir)
    with tf.io.gfile.GFile(flags_file) as f:
      saved = json.load(f)
    # The data and kNN flags of this run; the network and its preprocessing from the training run.
    overrides = {k: getattr(cfg, k) for k in ("dataset", "dataset_dir", "train_split", "val_split",
                                              "eval_batch_size", "strategy") if getattr(cfg, k)}
    train_cfg = Config.make(**saved).replace(**overrides)
    from tfssl.tasks import get_task_class
    task_cls = get_task_class(train_cfg.task)
    if not task_cls.TRAINS:
      raise ValueError("--workdir %s holds a %s run, which has no network" % (cfg.workdir,
                                                                            train_cfg.task))
    ctx = TaskContext(num_classes=trainer.dataset_spec.num_classes,
                      global_batch_size=train_cfg.batch_size or 1)
    with trainer.strategy.scope():
      task = task_cls(train_cfg, ctx)
      tiny = datasets.make_input_fn(train_cfg, train_cfg.train_split, True, batch_size=2)(None)
      task(next(iter(tiny.take(1))), training=False)
    # The trainer's layout: the task's weights as one list (tfssl/trainer.py). Every weight of the
    # rebuilt network must come from the checkpoint; the optimizer's slots are not needed.
    checkpoint = tf.train.Checkpoint(weights=list(task.weights))
    checkpoint.read(path).expect_partial().assert_existing_objects_matched()
    return task.representation, train_cfg
