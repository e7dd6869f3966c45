"""Pretrain -> export -> linear evaluation and kNN, in one process: what `make demo` and
benchmarks/accuracy.py run. Each step is the same Trainer that `python -m tfssl.train_and_eval` uses.
"""

import os
import time

import numpy as np

from tfssl.config import Config, config_from_flagfile  # noqa: F401  (the tools' and tests' entry)


def eval_view(config):
  """(chain, flags) to evaluate a representation pretrained with `config` (preprocess.eval_view)."""
  from tfssl.data import preprocess
  return preprocess.eval_view(config)


def flagfile_path(task, dataset):
  """The shipped config's file (tfssl/flagfiles.py), whether or not it exists."""
  from tfssl.flagfiles import FLAGS_DIR
  return os.path.join(FLAGS_DIR, task, dataset + ".cfg")


def pretrain(config):
  """Trains `config` in its workdir (resuming if it is there) and exports the result.

  Returns (export_dir, steps, seconds of training in this call).
  """
  from tfssl.trainer import Trainer
  trainer = Trainer(config)
  start = time.time()
  trainer.train()
  seconds = time.time() - start
  return trainer.export(trainer.step), trainer.step, seconds


def export_random_init(config):
  """The same network at random initialisation, exported: the baseline a representation must beat."""
  from tfssl.trainer import Trainer
  trainer = Trainer(config)
  trainer.build()
  return trainer.export(0)


def linear_eval(export_dir, workdir, dataset_dir, preprocessing, dataset="fashion_mnist", epochs=3,
                batch_size=256, lr=0.1, **extra):
  """Linear heads on every end point of a frozen export; returns {top1_accuracy_<tap>: ...} on test."""
  from tfssl.trainer import Trainer
  config = Config.make(task="linear_eval", hub_module=export_dir, workdir=workdir, dataset=dataset,
                       dataset_dir=dataset_dir, preprocessing=preprocessing, batch_size=batch_size,
                       eval_batch_size=512, lr=lr, lr_scale_batch_size=256, epochs=epochs,
                       lr_schedule="cosine", train_split="train", val_split="test",
                       save_checkpoints_secs=3600, log_every_steps=100, **extra)
  trainer = Trainer(config)
  trainer.train()
  return trainer.evaluate()


def best_tap(metrics, prefix="top1_accuracy_"):
  """(tap, accuracy) of the best linear head."""
  taps = {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}
  tap = max(taps, key=taps.get)
  return tap, taps[tap]


def export_features(export_dir, dataset_dir, preprocessing, end_point="pre_logits",
                    dataset="fashion_mnist", max_bank=None, combine="avg_pool", **preprocess_flags):
  """(train features, train labels, test features, test labels) of an export's end point, the
  train split limited to its first `max_bank` examples if given."""
  import tensorflow as tf
  from tfssl.data import datasets
  from tfssl.evaluation import knn, linear_probe
  from tfssl.models.export import load_export
  export = load_export(export_dir)

  @tf.function
  def rep(images):
    fn = lambda x: export.representation(x, training=False)  # noqa: E731
    if images.shape.rank == 5:
      return linear_probe.patch_taps(fn, images, "adaptive_max", combine)
    return fn(images)

  def features(split, limit):
    ds = datasets.load_batches(dataset_dir, split, preprocessing, 512, dataset=dataset, **preprocess_flags)
    if limit:
      ds = ds.unbatch().take(limit).batch(512)
    return knn.extract_features(rep, ds, end_point)

  return features("train", max_bank) + features("test", None)


def fixed_feature_scores(export_dir, config, dataset_dir, max_bank=None):
  """evaluation/fixed_features.evaluate (linear and kNN) on an export's `pre_logits`, through the
  evaluation view of the config it was pretrained with: how the demo and benchmarks/precision.py
  score a representation."""
  from tfssl.data import datasets
  from tfssl.evaluation import fixed_features
  chain, view_flags = eval_view(config)
  view_flags = {k: v for k, v in view_flags.items() if k != "combine_patches"}
  x_train, y_train, x_test, y_test = export_features(
      export_dir, dataset_dir, chain, "pre_logits", dataset=config.dataset, max_bank=max_bank,
      combine=config.combine_patches, **view_flags)
  num_classes = datasets.get_dataset(config.dataset, dataset_dir).num_classes
  return fixed_features.evaluate(x_train, y_train, x_test, y_test, num_classes)


def knn_of_export(export_dir, dataset_dir, preprocessing, end_point="pre_logits", dataset="fashion_mnist",
                  k=200, temperature=0.1, max_bank=None, combine="avg_pool", **preprocess_flags):
  """Weighted kNN (k=200, t=0.1) of an export's end point: train split as bank, test as queries."""
  from tfssl.data import datasets
  from tfssl.evaluation import knn
  spec = datasets.get_dataset(dataset, dataset_dir)
  bank, bank_labels, queries, query_labels = export_features(
      export_dir, dataset_dir, preprocessing, end_point, dataset, max_bank, combine,
      **preprocess_flags)
  return knn.weighted_knn(bank, bank_labels, queries, query_labels, spec.num_classes, k=k,
                          temperature=temperature)


def raw_pixel_baselines(dataset_dir, dataset="fashion_mnist", k=200, max_train=None):
  """evaluation/fixed_features.evaluate on raw pixels in [0, 1]: one value per pixel, since the
  records decode to RGB and a grayscale image's three equal channels would count each pixel three
  times. `max_train` limits the training set to its first examples, as export_features' max_bank."""
  from tfssl.data import datasets
  from tfssl.evaluation import fixed_features
  spec = datasets.get_dataset(dataset, dataset_dir)

  def arrays(split, limit=None):
    xs, ys = [], []
    batches = datasets.load_batches(dataset_dir, split, "0_to_1", 1000, dataset=dataset)
    if limit:
      batches = batches.unbatch().take(limit).batch(1000)
    for batch in batches:
      xs.append(batch["image"].numpy())
      ys.append(batch["label"].numpy())
    return np.concatenate(xs), np.concatenate(ys)

  def pixels(*images):
    """[N, H*W*C] rows, one channel where every image of the splits is gray."""
    if all(np.array_equal(x[..., :1].repeat(x.shape[-1], -1), x) for x in images):
      images = [x[..., :1] for x in images]
    return [x.reshape(len(x), -1) for x in images]

  (x_train, y_train), (x_test, y_test) = arrays("train", max_train), arrays("test")
  x_train, x_test = pixels(x_train, x_test)
  return fixed_features.evaluate(x_train, y_train, x_test, y_test, spec.num_classes, k=k)

