"""A method from outside the package, added as the README's "Adding a method" says: its task, its
flag, its view-making op and a dataset name, registered by a module on $TFSSL_PLUGINS, trained by
the unchanged command line on real Fashion-MNIST records. No file of tfssl is touched."""

import json
import os
import sys
import textwrap

import pytest

from helpers import cli

PLUGIN = textwrap.dedent('''
    """Flip prediction: was this view mirrored left-right? A two-view pretext task."""

    import keras
    import tensorflow as tf

    from tfssl.config import FlagSpec, register_flags
    from tfssl.data import datasets, preprocess
    from tfssl.models import get_net_for_task
    from tfssl.tasks import register_task
    from tfssl.tasks.base import Task
    from tfssl.tasks.views import merge_views

    register_flags(FlagSpec("flip_loss_weight", "float", 1.0, "Scale of the flip loss."))
    # Any folder with a manifest, under a name of its own.
    datasets.register_dataset("my_photos", datasets.from_manifest)


    @preprocess.register("flip_pair", views=2)
    def flip_pair(data, config, is_training):
      image = data["image"]
      out = dict(data)
      out["image"] = tf.stack([image, tf.image.flip_left_right(image)])
      out["label"] = tf.constant([0, 1], tf.int32)
      return out


    class FlipPrediction(Task):
      VIEWS_HINT = "end the chain with flip_pair"

      @classmethod
      def expected_views(cls, config):
        return 2

      def __init__(self, config, ctx, **kwargs):
        super().__init__(config, ctx, **kwargs)
        self.backbone = get_net_for_task(config, 2)
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

      @property
      def metrics(self):
        return [self.loss_tracker, self.accuracy]

      def call(self, features, training=False):
        logits, _ = self.backbone(merge_views(features["image"]), training=training)
        return logits

      def _loss(self, features, training):
        labels = tf.reshape(features["label"], [-1])
        logits = self(features, training=training)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        self.accuracy.update_state(labels, logits)
        return loss * self.config.flip_loss_weight

      def train_step(self, features):
        with tf.GradientTape() as tape:
          loss = self._loss(features, True)
          total = loss + self.weight_decay_loss()
        self.minimize(tape, total)
        self.loss_tracker.update_state(loss)

      def test_step(self, features):
        self.loss_tracker.update_state(self._loss(features, False))


    register_task("flip_prediction", FlipPrediction)
''')

FLAGFILE = """\
--task=flip_prediction
--architecture=cifar_resnet18
--filters_factor=1
--dataset=my_photos
--preprocessing=resize,-1_to_1,flip_pair
--resize_size=32
--batch_size=16
--lr=0.01
--train_steps=3
--log_every_steps=1
--flip_loss_weight=2
"""


@pytest.fixture
def plugin_env(tmp_path):
  (tmp_path / "my_ssl_plugin.py").write_text(PLUGIN)
  (tmp_path / "flip.cfg").write_text(FLAGFILE)
  env = cli.child_env(TFSSL_PLUGINS="my_ssl_plugin",
                      PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path))
  return env, str(tmp_path / "flip.cfg")


def _cli(args, env, repo_root):
  # A real process: the plugin is imported from $TFSSL_PLUGINS when the command starts.
  return cli.process(args, env=env, cwd=repo_root)


@pytest.mark.slow
def test_a_method_registered_from_outside_trains_through_the_cli(plugin_env, tmp_path,
                                                                fashion_mnist_dir, repo_root):
  env, flagfile = plugin_env
  workdir = str(tmp_path / "w")
  proc = _cli(["--flagfile=" + flagfile, "--workdir=" + workdir, "--dataset_dir=" + fashion_mnist_dir],
              env, repo_root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "step 3/3" in proc.stderr
  assert os.path.exists(os.path.join(workdir, "ckpt-3.index"))
  with open(os.path.join(workdir, "flags.json")) as f:
    flags = json.load(f)
  # The method's own flag went from the flagfile to its Config, the dataset name to the registry.
  assert flags["flip_loss_weight"] == 2.0 and flags["dataset"] == "my_photos"


def test_the_views_check_holds_for_a_method_from_outside(plugin_env, tmp_path, fashion_mnist_dir,
                                                         repo_root):
  env, flagfile = plugin_env
  workdir = str(tmp_path / "w")
  proc = _cli(["--flagfile=" + flagfile, "--workdir=" + workdir, "--dataset_dir=" + fashion_mnist_dir,
               "--preprocessing=resize,-1_to_1"], env, repo_root)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("tfssl: error:")]
  assert len(lines) == 1 and "expects 2" in lines[0] and "flip_pair" in lines[0], proc.stderr[-2000:]
  assert not os.path.exists(workdir)


def test_without_the_plugin_its_dataset_name_is_unknown(tmp_path, fashion_mnist_dir):
  # In this process, where no plugin was ever loaded.
  proc = cli.train_and_eval(["--task=supervised", "--architecture=resnet50", "--dataset=my_photos",
                             "--dataset_dir=" + fashion_mnist_dir,
                             "--workdir=" + str(tmp_path / "w"), "--batch_size=8", "--lr=0.1",
                             "--epochs=1", "--preprocessing=resize", "--resize_size=32"])
  assert proc.returncode == 2
  assert "unknown --dataset=my_photos" in proc.stderr
