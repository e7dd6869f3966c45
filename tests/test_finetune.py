"""Fine-tuning an export: which variables --fine_tune_after_block trains and which stay exactly as
exported, BatchNorm modes, checkpoint round trip, the fine-tuned export, and real Fashion-MNIST."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfssl import optimizers
from tfssl.config import Config
from tfssl.models import get_net
from tfssl.models.export import ExportModule, load_export, save_export
from tfssl.tasks.base import TaskContext
from tfssl.models.export_graph import AFTER_BLOCKS, block_of, block_of_paths, variable_paths
from tfssl.tasks.finetune import Finetune

NUM_CLASSES = 5
SIZE = 32


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  """A randomly initialised ResNet50 v2 (filters_factor 1) with its own 10-way logits."""
  net = get_net("resnet50", 10, filters_factor=1)
  net(tf.zeros([1, SIZE, SIZE, 3]), training=False)
  path = str(tmp_path_factory.mktemp("export") / "export")
  return save_export(ExportModule(net, input_shape=(None, SIZE, SIZE, 3)), path)


def make_task(export_dir, k, **overrides):
  values = dict(task="finetune", hub_module=export_dir, fine_tune_after_block=k, lr=0.1,
                batch_size=8, optimizer="sgd", weight_decay=1e-4)
  values.update(overrides)
  config = Config.make(**values)
  task = Finetune(config, TaskContext(num_classes=NUM_CLASSES))
  task(batch(), training=False)
  task.optimizer = optimizers.build_optimizer(config, optimizers.build_lr_schedule(config, 10, 10))
  task.optimizer.build(task.trainable_variables)
  return task


def batch(seed=0):
  rng = np.random.RandomState(seed)
  return {"image": tf.constant(rng.normal(size=(8, SIZE, SIZE, 3)), tf.float32),
          "label": tf.constant(rng.randint(0, NUM_CLASSES, size=8), tf.int32)}


def export_variables(task):
  """[(block, path through the net, variable)] of every variable the export's functions read."""
  paths = variable_paths(task.pretrained)
  out = []
  for v in task._captured_variables():
    named = [p for p in paths[v.ref()] if "variable_list" not in p]  # not the flat lists
    out.append((block_of_paths(paths[v.ref()]), named[0], v))
  return out


def run_steps(task, steps=2):
  step = tf.function(task.train_step)
  for i in range(steps):
    step(batch(i))


def test_block_of_reads_the_object_graph_path():
  assert block_of("net/blocks/0/members/2/conv1/_kernel") == 1
  assert block_of("net/blocks/3/members/0/bn1/moving_mean") == 4
  assert block_of("net/root_conv/conv/_kernel") == 0
  assert block_of("net/root_bn/gamma") == 0
  assert block_of("net/final_bn/gamma") is None
  assert block_of("variable_list/7") is None
  # A flat list and the structured path of one variable: the structured one decides.
  assert block_of_paths(["variable_list/7", "net/blocks/2/members/0/bn1/beta"]) == 3
  assert block_of_paths(["variable_list/7", "net/final_bn/beta"]) == AFTER_BLOCKS


@pytest.mark.slow  # the ResNet-50 export and its traced steps
def test_every_resnet_variable_has_a_place(export_dir):
  task = Finetune(Config.make(task="finetune", hub_module=export_dir),
                  TaskContext(num_classes=NUM_CLASSES))
  places = {}
  for block, path, _ in export_variables(task):
    places.setdefault(block, []).append(path)
  # ResNet50 v2: the stem is one conv; blocks of 3, 4, 6, 3 units; final_bn and the logits after.
  assert [p.split("/")[-2:] for p in places[0]] == [["conv", "_kernel"]]
  assert sorted(places) == [0, 1, 2, 3, 4, AFTER_BLOCKS]
  units = {b: {p.split("/")[4] for p in places[b]} for b in (1, 2, 3, 4)}  # net/blocks/i/members/j
  assert [len(units[b]) for b in (1, 2, 3, 4)] == [3, 4, 6, 3]
  after = sorted({p.split("/")[1] for p in places[AFTER_BLOCKS]})
  assert after == ["final_bn", "logits_layer"]


@pytest.mark.slow  # the ResNet-50 export and its traced steps
@pytest.mark.parametrize("k", [-1, 0, 2, 4])
def test_fine_tune_after_block_trains_only_what_follows_block_k(export_dir, k):
  task = make_task(export_dir, k)
  variables = export_variables(task)
  before = {v.ref(): v.numpy().copy() for _, _, v in variables}
  head_before = [v.numpy().copy() for v in task.head.trainable_variables]
  run_steps(task)
  trained = {v.ref() for v in task.backbone_variables}
  for block, path, v in variables:
    changed = not np.array_equal(before[v.ref()], v.numpy())
    own_logits = "logits_layer" in path
    frozen = k == 4 or own_logits or (k >= 0 and block <= k)
    if frozen:
      # Weights and BatchNorm averages alike stay exactly as exported.
      assert not changed, path
      assert v.ref() not in trained, path
    elif v.trainable:
      assert changed and v.ref() in trained, path
    else:
      # BatchNorm moving averages of a trained block move: training mode, batch statistics.
      assert changed, path
  assert all(not np.array_equal(a, b.numpy())
             for a, b in zip(head_before, task.head.trainable_variables))
  # By hand, ResNet50 v2: a unit has 9 trainable variables (preact_bn 2, conv1, bn1 2, conv2,
  # bn2 2, conv3), 10 with a projection shortcut (each block's first unit): blocks of 28, 37, 55
  # and 28; the stem conv 1; final_bn 2; the export's own logits (2) never train.
  expected = {-1: 1 + 28 + 37 + 55 + 28 + 2, 0: 28 + 37 + 55 + 28 + 2, 2: 55 + 28 + 2, 4: 0}[k]
  assert len(trained) == expected


@pytest.mark.slow  # the ResNet-50 export and its traced steps
def test_head_only_runs_the_export_in_inference_mode(export_dir):
  # With k = 4 the training features must be the export's inference-mode pre_logits.
  task = make_task(export_dir, 4)
  images = batch(3)["image"]
  features, _ = task.features(images, training=True)
  inference = task.pretrained.representation(images, training=False)["pre_logits"]
  training = task.pretrained.representation(images, training=True)["pre_logits"]
  np.testing.assert_allclose(features.numpy(), inference.numpy(), rtol=1e-5, atol=1e-5)
  assert not np.allclose(features.numpy(), training.numpy(), atol=1e-3)


@pytest.mark.slow  # the ResNet-50 export and its traced steps
def test_the_checkpoint_holds_the_trained_backbone(export_dir, tmp_path):
  task = make_task(export_dir, -1)
  run_steps(task)
  path = tf.train.Checkpoint(task=task).save(str(tmp_path / "ckpt"))
  fresh = make_task(export_dir, -1)
  pairs = list(zip(export_variables(task), export_variables(fresh)))
  assert any(not np.array_equal(a.numpy(), b.numpy()) for (_, _, a), (_, _, b) in pairs)
  tf.train.Checkpoint(task=fresh).restore(path).assert_existing_objects_matched()
  for (_, path_a, a), (_, path_b, b) in pairs:
    assert path_a == path_b
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for a, b in zip(task.head.variables, fresh.head.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow  # the ResNet-50 export and its traced steps
def test_the_fine_tuned_export_gives_the_new_logits(export_dir, tmp_path):
  task = make_task(export_dir, 2)
  run_steps(task, 1)
  path = save_export(task.export_module(), str(tmp_path / "finetuned"))
  loaded = load_export(path)
  images = batch(5)["image"]
  logits = task({"image": images}, training=False)
  out = loaded.representation(images, training=False)
  assert out["logits"].shape == (8, NUM_CLASSES)
  # At the logits' own scale (an lr-0.1 step on a random net may make them large): float32 sums in
  # another order differ by ~1e-6 of it, a wrong weight by O(1).
  atol = 1e-5 * max(1.0, float(np.abs(logits.numpy()).max()))
  np.testing.assert_allclose(out["logits"].numpy(), logits.numpy(), rtol=1e-4, atol=atol)
  np.testing.assert_allclose(loaded(images, training=False).numpy(), logits.numpy(), rtol=1e-4,
                             atol=atol)


@pytest.mark.slow  # the ResNet-50 export and its traced steps
def test_a_missing_export_or_a_bad_block_is_refused(export_dir, tmp_path):
  ctx = TaskContext(num_classes=NUM_CLASSES)
  with pytest.raises(ValueError, match="--hub_module"):
    Finetune(Config.make(task="finetune"), ctx)
  with pytest.raises(ValueError, match="no saved_model.pb"):
    Finetune(Config.make(task="finetune", hub_module=str(tmp_path)), ctx)
  with pytest.raises(ValueError, match="fine_tune_after_block=5"):
    Finetune(Config.make(task="finetune", hub_module=export_dir, fine_tune_after_block=5), ctx)


# ---- real data ----
FASHION = dict(task="finetune", dataset="fashion_mnist", train_split="train", val_split="test",
               batch_size=32, eval_batch_size=64, preprocessing="resize,flip_lr,-1_to_1",
               resize_size="32", lr=0.05, lr_scale_batch_size=32, weight_decay=1e-4,
               subset_percent=1, random_seed=1, fine_tune_after_block=-1)


@pytest.fixture(scope="module")
def fashion_export(random_export):
  """A randomly initialised CIFAR ResNet-18 (filters_factor 1) export for 32x32 images, with
  10-way logits (conftest.random_export)."""
  return random_export


def subset_batches(config, spec, subset, is_training, batch_size):
  """The train split restricted to the subset, as the trainer's input will read it."""
  from tfssl.data import preprocess, shard_reader, tfrecord
  files = spec.files(config.train_split)
  records = shard_reader.read_shards(files, [os.path.getsize(f) for f in files],
                                     ordered=not is_training, skip_corrupt=False,
                                     shuffle_files_seed=1, repeat=is_training)
  records = records.filter(subset.keep)
  if is_training:
    records = records.shuffle(subset.num_examples, seed=1)
  parse = lambda record: tfrecord.parse_example(record, spec.label_offset)  # noqa: E731
  examples = shard_reader.parse_records(records, parse, False)
  chain = preprocess.get_preprocess_fn(config.preprocessing, config, is_training)
  return examples.map(chain).batch(batch_size, drop_remainder=is_training)


@pytest.mark.slow
def test_finetuning_on_one_percent_of_fashion_mnist_lowers_the_loss(fashion_mnist_dir,
                                                                      fashion_export):
  from tfssl.data import datasets, subsets
  config = Config.make(dataset_dir=fashion_mnist_dir, hub_module=fashion_export, **FASHION)
  spec = datasets.get_dataset("fashion_mnist", fashion_mnist_dir)
  subset = subsets.training_subset(config, spec)
  # By hand: round(n_c / 100) of each class's n_c records in the train split (9 of 10 shards).
  label = {"image/class/label": tf.io.FixedLenFeature([], tf.int64)}
  labels = tf.data.TFRecordDataset(spec.files("train")).batch(4096).map(
      lambda r: tf.io.parse_example(r, label)["image/class/label"])
  counts = np.bincount(np.concatenate(list(labels.as_numpy_iterator())) - 1, minlength=10)
  assert subset.class_counts == tuple(max(1, int(np.floor(c / 100 + 0.5))) for c in counts)
  task = Finetune(config, TaskContext(num_classes=10))
  fixed = next(iter(subset_batches(config, spec, subset, False, 128)))
  task(fixed, training=False)
  task.optimizer = optimizers.build_optimizer(config, optimizers.build_lr_schedule(config, 10, 60))
  task.optimizer.build(task.trainable_variables)

  def fixed_loss():
    # Batch statistics, as test_trainer: a few steps do not settle BatchNorm's moving averages.
    logits = task(fixed, training=True)
    return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(fixed["label"],
                                                                                logits)))

  before = fixed_loss()
  step = tf.function(task.train_step)
  for features in subset_batches(config, spec, subset, True, 32).take(60):
    step(features)
  after = fixed_loss()
  assert after < 0.7 * before, (before, after)


@pytest.mark.slow
def test_the_trainer_runs_finetune(fashion_mnist_dir, fashion_export, tmp_path):
  from tfssl.trainer import Trainer
  config = Config.make(dataset_dir=fashion_mnist_dir, hub_module=fashion_export,
                       workdir=str(tmp_path / "work"), train_steps=3, eval_steps=1,
                       log_every_steps=3, save_checkpoints_secs=3600, **FASHION)
  trainer = Trainer(config)
  # The epoch is the labelled subset's, and the training input holds only its records.
  assert trainer.subset is not None
  assert trainer.steps_per_epoch == max(1, trainer.subset.num_examples // config.batch_size)
  kept = sum(1 for _ in trainer.input_fn(config.train_split, False, batch_size=256)(None).unbatch())
  assert kept == trainer.subset.num_examples
  logs = trainer.train()
  assert trainer.step == 3 and np.isfinite(logs["loss"])
  metrics = trainer.evaluate(steps=1)
  assert 0.0 <= metrics["top1_accuracy_logits"] <= metrics["top5_accuracy_logits"] <= 1.0
  exported = load_export(trainer.export(3))
  images = tf.zeros([2, 32, 32, 3])
  assert exported.representation(images, training=False)["logits"].shape == (2, 10)
