"""Shared fixtures: the real Fashion-MNIST records that `make data` builds, and the small runs and
exports that many test files read, each trained or written once per test session.

The test process splits its CPU into two logical devices before TensorFlow initialises them (as
`--cpu_replicas=2` does for a run): device configuration is process-global and frozen at the first
op, and with the split made here the two-replica proofs (MirroredStrategy over /cpu:0 and /cpu:1)
run in this process beside everything else, which keeps using /cpu:0 alone.
"""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

REPO = pathlib.Path(__file__).resolve().parents[1]
FASHION_MNIST = REPO / "data" / "fashion_mnist"
TEST_REPLICAS = 2


# Files whose tests share a session fixture run on one pytest-xdist worker, so the fixture is
# made once (every other file is a group of its own: module fixtures are made once too).
SHARED_GROUPS = {"test_console": "rotation_run", "test_visualize": "rotation_run",
                 "test_export_layer": "simclr_run", "test_knn_eval": "simclr_run"}


def pytest_configure(config):
  # The process that runs tests (not pytest-xdist's controller, which only hands them out).
  if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
    from tfssl.runtime import cpu_defaults
    from tfssl.runtime import strategy
    strategy.split_cpu(TEST_REPLICAS)
    cpu_defaults.configure_threads()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
  for item in items:
    module = item.module.__name__.rsplit(".", 1)[-1]
    item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(module, module)))


@pytest.fixture(scope="session")
def fashion_mnist_dir():
  """data/fashion_mnist with its dataset_info.json; `make test` builds it first (make data)."""
  if not (FASHION_MNIST / "dataset_info.json").exists():
    pytest.fail("data/fashion_mnist is missing: run `make data` (make test does it for you)")
  return str(FASHION_MNIST)


@pytest.fixture(scope="session")
def repo_root():
  return REPO


@pytest.fixture(scope="session")
def random_export(tmp_path_factory):
  """A CIFAR ResNet-18 (filters_factor 1) with 10-way logits, exported at random initialisation
  for 32x32 images: what linear evaluation, fine-tuning and kNN read when the weights do not
  matter."""
  import tensorflow as tf
  from tfssl.models import get_net
  from tfssl.models.export import ExportModule, save_export
  net = get_net("cifar_resnet18", 10, filters_factor=1)
  net(tf.zeros([1, 32, 32, 3]), training=False)
  path = str(tmp_path_factory.mktemp("random_export") / "export")
  return save_export(ExportModule(net, input_shape=(None, 32, 32, 3)), path)


@pytest.fixture(scope="session")
def simclr_run(tmp_path_factory, fashion_mnist_dir):
  """Two SimCLR steps by the Trainer on the real records (CIFAR ResNet-18 x1, batch 8): its
  config (the workdir holds the checkpoint and flags.json) and the export of its last step.

  A small lr keeps the representation bounded: at lr 0.1 two steps blew inference-mode features
  up to ~1e15 (the moving statistics still at their start), where float32 rounding alone makes
  elements differ by 1e-4 relative between two correct computations."""
  from helpers.configs import tiny_config
  from tfssl.trainer import Trainer
  config = tiny_config("simclr", workdir=tmp_path_factory.mktemp("simclr_run"),
                       dataset_dir=fashion_mnist_dir, batch_size=8, image_size=32,
                       preprocessing="simclr_augment", lr=1e-3, train_steps=2, random_seed=3,
                       serving_input_shape="None,32,32,3")
  trainer = Trainer(config)
  trainer.train()
  assert trainer.step == 2
  export = trainer.export(trainer.step)
  trainer.close()
  return config, export


@pytest.fixture(scope="session")
def rotation_run(tmp_path_factory, fashion_mnist_dir):
  """Four rotation steps by the Trainer on the real records, summaries every two steps, then
  `--run_eval` (evaluation and the export of step 4, which records its evaluation image):
  the workdir's config and its export."""
  from helpers.configs import ROTATION, tiny_config
  from tfssl.trainer import Trainer
  config = tiny_config(workdir=tmp_path_factory.mktemp("rotation_run"),
                       dataset_dir=fashion_mnist_dir, **ROTATION)
  trainer = Trainer(config)
  trainer.train()
  assert trainer.step == 4
  trainer.close()
  evaluator = Trainer(config.replace(run_eval=True, eval_timeout_secs=5, eval_steps=1))
  assert evaluator.run_eval() == 4
  evaluator.close()
  return config, os.path.join(config.workdir, "export", "4")


@pytest.fixture
def workers():
  """Starts multi-worker jobs (helpers.workers.Workers(tmp_path, name, args)) and kills whatever is
  left of them after the test."""
  from helpers.workers import Workers
  started = []

  def start(*args, **kwargs):
    started.append(Workers(*args, **kwargs))
    return started[-1]

  yield start
  for job in started:
    job.kill()
