"""A method's encoder saves the Keras way (issue #28): `encoder.save("x.keras")`, then
`keras.saving.load_model` after `import tfssl.models` gives the same end points, in this process
for every projection form and in a fresh one."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import cli
from helpers import tasks as helper_tasks
from tfssl.models import get_net
from tfssl.models.representation import Encoder

RNG = np.random.RandomState(0)
BATCH, SIZE = 4, 16
IMAGES = RNG.rand(3, SIZE, SIZE, 3).astype(np.float32)
COMMON = dict(architecture="cifar_resnet18", filters_factor=1, batch_size=BATCH, lr=0.1, epochs=1,
              proj_hidden_dim=16, proj_out_dim=8, lineareval_while_pretraining=False)


def _views(n):
  return {"image": tf.constant(RNG.rand(BATCH, n, SIZE, SIZE, 3).astype(np.float32)),
          "label": tf.constant([0, 1, 2, 3])}


METHODS = {  # one per projection form of models/projected.py
    "simclr": (_views(2), dict(temperature=0.5)),                       # first
    "byol": (_views(2), dict(pred_hidden_dim=16)),                      # output
    "swav": ({"crops_16": _views(2)["image"], "label": tf.constant([0, 1, 2, 3])},
             dict(nmb_prototypes=6, nmb_crops="2", size_crops="16", min_scale_crops="0.14",
                  max_scale_crops="1", crops_for_assign="0,1")),        # l2
    "ava": (_views(3), {}),                                             # l2, a Dense head
}


def _trained_encoder(task_name):
  features, values = METHODS[task_name]
  task = helper_tasks.make_task(features, task=task_name, **dict(COMMON, **values))
  task.train_step(features)  # weights and BatchNorm statistics away from their initial values
  return task.encoder()


def _assert_same_end_points(a, b):
  assert sorted(a) == sorted(b)
  for key in a:
    np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=1e-5, err_msg=key)


@pytest.mark.parametrize("task_name", sorted(METHODS))
def test_a_methods_encoder_saves_as_keras_and_loads_with_equal_end_points(task_name, tmp_path):
  encoder = _trained_encoder(task_name)
  expected = encoder(IMAGES, training=False)
  assert "proj_head_output" in expected
  path = str(tmp_path / "encoder.keras")
  encoder.save(path)
  loaded = keras.saving.load_model(path)
  assert isinstance(loaded, Encoder)
  _assert_same_end_points(loaded(IMAGES, training=False), expected)


def test_a_backbone_encoder_loads_in_a_fresh_process(tmp_path):
  # What the pretext tasks' encoder is: the backbone alone (here with logits, as supervised's).
  net = get_net("cifar_resnet18", 5, filters_factor=1)
  encoder = Encoder(net)
  encoder(IMAGES, training=True)  # BatchNorm statistics move
  expected = {k: v.numpy() for k, v in encoder(IMAGES, training=False).items()}
  encoder.save(str(tmp_path / "encoder.keras"))
  np.save(tmp_path / "images.npy", IMAGES)
  code = ("import sys, json, numpy as np, keras, tfssl.models\n"
          "m = keras.saving.load_model(sys.argv[1])\n"
          "out = m(np.load(sys.argv[2]), training=False)\n"
          "print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))\n")
  result = cli.process([str(tmp_path / "encoder.keras"), str(tmp_path / "images.npy")], code=code)
  assert result.returncode == 0, result.stderr[-3000:]
  loaded = json.loads(result.stdout.strip().splitlines()[-1])
  _assert_same_end_points({k: np.array(v, np.float32) for k, v in loaded.items()}, expected)


def test_a_backbone_not_made_by_get_net_says_why_it_cannot_be_saved(tmp_path):
  from tfssl.models.cifar_resnet import cifar_resnet18
  from tfssl.models.layers import NetStyle
  net = cifar_resnet18(num_classes=None, filters_factor=1, style=NetStyle(), name="mine")
  encoder = Encoder(net)
  encoder(IMAGES)
  with pytest.raises(NotImplementedError, match="not built by tfssl.models.get_net"):
    encoder.save(str(tmp_path / "x.keras"))
