"""Fine-tuning an export in Keras with optimizers that keep slots (tfssl.models.export.ExportLayer):
a pretext-style (a net with its own logits) and a contrastive (SimCLR, with its projection head)
export, trained with Adam on labelled Fashion-MNIST images."""

import numpy as np
import pytest
import keras

from tfssl.data import datasets
from tfssl.models.export import ExportLayer


pytestmark = pytest.mark.slow

def _images_and_labels(fashion_mnist_dir, n=32):
  batch = next(iter(datasets.load_batches(fashion_mnist_dir, "test", "resize,-1_to_1", n,
                                          resize_size="32")))
  return batch["image"].numpy(), batch["label"].numpy()


@pytest.fixture(scope="module")
def exports(random_export, simclr_run):
  """A pretext-style export (a net with its own logits, random weights) and a contrastive one
  (SimCLR trained two steps, with its projection head): the session's shared exports."""
  return {"rotation": random_export, "simclr": simclr_run[1]}


@pytest.mark.parametrize("kind", ["rotation", "simclr"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum"])
def test_an_export_fine_tunes_with_an_optimizer_that_keeps_slots(kind, optimizer, exports,
                                                                fashion_mnist_dir):
  path = exports[kind]
  layer = ExportLayer(path, output="representation", trainable=True)
  inputs = keras.Input((32, 32, 3))
  features = layer(inputs)["pre_logits"]
  model = keras.Model(inputs, keras.layers.Dense(10)(features))
  opt = (keras.optimizers.Adam(1e-3) if optimizer == "adam"
         else keras.optimizers.SGD(0.01, momentum=0.9))
  model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  names = [w.name for w in layer.weights]
  # Layer paths, not TF's "rotation/kernel:0".
  assert any("root_conv_conv_kernel" in n for n in names) and not any(":" in n for n in names)
  assert len(set(names)) == len(names)
  if kind == "simclr":
    assert any("head_contrastive" in n or "heads" in n for n in names), names[-5:]
  before = [w.numpy() for w in layer.trainable_weights]
  x, y = _images_and_labels(fashion_mnist_dir)
  history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))
  assert history.history["loss"][-1] < history.history["loss"][0]
  changed = [not np.allclose(a, w.numpy()) for a, w in zip(before, layer.trainable_weights)]
  assert sum(changed) > len(changed) // 2  # the backbone itself was fine-tuned


def test_keras_tfsm_layer_names_are_what_fails_with_slots(exports):
  # Why ExportLayer exists: TFSMLayer names weights "rotation_kernel:0", which Adam's slot
  # scope rejects. If a Keras release fixes this, the README can recommend TFSMLayer again.
  path = exports["rotation"]
  layer = keras.layers.TFSMLayer(path, call_endpoint="default_inference",
                                 call_training_endpoint="default_training", trainable=True)
  inputs = keras.Input((32, 32, 3))
  model = keras.Model(inputs, keras.layers.Dense(10)(layer(inputs)))
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  with pytest.raises(ValueError, match="not a valid scope name"):
    model.fit(np.zeros([4, 32, 32, 3], np.float32), np.zeros([4], np.int32), verbose=0)
