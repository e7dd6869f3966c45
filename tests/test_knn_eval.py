"""The knn_eval command on an export and on a workdir's checkpoint, against a NumPy weighted-kNN vote
over the same features, on a 300-image cut of the real Fashion-MNIST records."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfssl.config import Config

PER_SHARD = 100
K, T = 20, 0.1


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, fashion_mnist_dir):
  """Two train shards (logical train = the first, val = the second) and one validation shard."""
  out = str(tmp_path_factory.mktemp("tiny_fashion_mnist"))
  source = os.path.join(fashion_mnist_dir, "train-00000-of-00010")
  records = [r.numpy() for r in tf.data.TFRecordDataset(source).take(3 * PER_SHARD)]
  names = ["train-00000-of-00002", "train-00001-of-00002", "validation-00000-of-00001"]
  for i, name in enumerate(names):
    with tf.io.TFRecordWriter(os.path.join(out, name)) as writer:
      for record in records[i * PER_SHARD:(i + 1) * PER_SHARD]:
        writer.write(record)
  with open(os.path.join(fashion_mnist_dir, "dataset_info.json")) as f:
    info = json.load(f)
  shard = lambda name: {"file": name, "num_examples": PER_SHARD}
  info["splits"] = {"train": {"num_examples": 2 * PER_SHARD, "shards": [shard(n) for n in names[:2]]},
                    "validation": {"num_examples": PER_SHARD, "shards": [shard(names[2])]}}
  with open(os.path.join(out, "dataset_info.json"), "w") as f:
    json.dump(info, f)
  return out


@pytest.fixture(scope="module")
def pretrained(simclr_run):
  """Two SimCLR steps by the trainer (conftest.simclr_run): its config, whose workdir holds the
  checkpoint and flags, and the export of its last step."""
  return simclr_run


def knn_config(tiny_dir, workdir, **overrides):
  values = dict(task="knn_eval", dataset="tfrecord", dataset_dir=tiny_dir, workdir=workdir,
                batch_size=64, image_size=32, knn_k=K, knn_temperature=T,
                knn_preprocessing="center_crop_resize")
  values.update(overrides)
  return Config.make(**values)


def numpy_vote(bank, bank_labels, queries, query_labels):
  """Top-1 bounds of the vote: cosine similarities, the k nearest, class scores sum of exp(s / t).

  Returns (lowest, highest) accuracy: a query whose two best classes score within 1e-4 of each
  other (or whose k-th and (k+1)-th neighbours tie) may go either way in float32.
  """
  bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
  queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  sure = unsure = 0
  for q, label in zip(queries, query_labels):
    sims = bank @ q
    order = np.argsort(-sims, kind="stable")
    scores = np.zeros(10)
    for j in order[:K]:
      scores[bank_labels[j]] += np.exp(sims[j] / T)
    first, second = np.sort(scores)[::-1][:2]
    close = (first - second) <= 1e-4 * first or abs(sims[order[K - 1]] - sims[order[K]]) < 1e-6
    if close:
      unsure += 1
    else:
      sure += int(np.argmax(scores) == label)
  return sure / len(queries), (sure + unsure) / len(queries)


def _features(config, split, export_dir):
  from tfssl.data import datasets
  from tfssl.models.export import load_export
  model = load_export(export_dir)
  feats, labels = [], []
  for batch in datasets.make_input_fn(config, split, False)(None):
    feats.append(model.representation(batch["image"], training=False)["pre_logits"].numpy())
    labels.append(batch["label"].numpy())
  return np.concatenate(feats), np.concatenate(labels)


class Pixels(keras.Model):
  """A 'network' whose pre_logits are the pixels: well-separated features with a known vote."""

  def call(self, images, training=False):
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    return flat, {"pre_logits": flat}


def test_knn_eval_on_an_export_is_the_weighted_vote(tiny_dir, tmp_path):
  from tfssl.models.export import ExportModule, save_export
  from tfssl.tools import knn_eval
  export_dir = save_export(ExportModule(Pixels(), input_shape=(None, 32, 32, 3)),
                           str(tmp_path / "pixels"))
  config = knn_config(tiny_dir, str(tmp_path), hub_module=export_dir)
  results = knn_eval.run(config)
  data = config.replace(preprocessing="center_crop_resize")
  bank, bank_labels = _features(data, "train", export_dir)
  queries, query_labels = _features(data, "val", export_dir)
  assert len(bank) == PER_SHARD and len(queries) == PER_SHARD
  lowest, highest = numpy_vote(bank, bank_labels, queries, query_labels)
  assert highest - lowest <= 0.02
  assert lowest - 1e-9 <= results["knn_top1_pre_logits"] <= highest + 1e-9
  assert results["knn_top1_pre_logits"] > 0.5  # pixels do separate Fashion-MNIST classes
  assert results["knn_top1_pre_logits"] <= results["knn_top5_pre_logits"] <= 1.0
  with open(os.path.join(str(tmp_path), "eval_results.json")) as f:
    assert json.load(f)[-1]["kind"] == "knn_eval"


@pytest.mark.slow
def test_knn_eval_restores_the_checkpoint_the_trainer_wrote(tiny_dir, pretrained, tmp_path):
  from tfssl.models.export import load_export
  from tfssl.tools import knn_eval
  train_config, export_dir = pretrained
  config = knn_config(tiny_dir, train_config.workdir, knn_end_point="block4")
  restored = knn_eval.load_representation(config)
  representation, restored_config = restored.fn, restored.config
  assert restored_config.task == "simclr" and restored_config.preprocessing == "simclr_augment"
  images = tf.random.uniform([4, 32, 32, 3], seed=1)
  expected = load_export(export_dir).representation(images, training=False)
  got = representation(images)
  for name in ("block4", "pre_logits", "proj_head_output"):
    want = expected[name].numpy()
    assert 1e-3 < np.abs(want).max() < 1e3, (name, np.abs(want).max())
    # At the tensor's own scale: a weight restored wrongly moves it by O(1) of that scale, the
    # order of float32 sums by ~1e-6.
    np.testing.assert_allclose(got[name].numpy(), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max(), err_msg=name)
  results = knn_eval.run(config)
  assert set(results) == {"knn_top1_block4", "knn_top5_block4"}
  assert 0.0 <= results["knn_top1_block4"] <= results["knn_top5_block4"] <= 1.0


def test_knn_eval_without_a_representation_says_what_to_pass(tiny_dir, tmp_path):
  from tfssl.tools import knn_eval
  with pytest.raises(ValueError, match="hub_module"):
    knn_eval.run(knn_config(tiny_dir, str(tmp_path)))
