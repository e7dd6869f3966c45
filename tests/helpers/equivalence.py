"""How far apart two trainings of the same model are: the measure of the replica-equivalence and the
multi-worker proofs (tests/test_replica_equivalence.py explains the tolerances).

Weights are compared layer by layer, a BatchNorm's gamma, beta and statistics together: a beta
starts at zero, so on its own its relative error is that of its few updates, which a single ReLU
input rounded across the kink moves by a percent.
"""

import numpy as np

RTOL = 1e-4  # the losses of every step, and every layer's weights
# The whole update (weights after minus before, all variables as one vector): what a wrong loss
# scale breaks by its own size; a ReLU flip moves it by up to about 1e-2.
UPDATE_RTOL = 5e-2


def relative_error(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def by_layer(named):
  """{layer path: all its weights as one vector} of [(variable path, value)]."""
  layers = {}
  for name, value in named:
    layers.setdefault(name.rsplit("/", 1)[0], []).append(np.ravel(value))
  return {layer: np.concatenate(parts) for layer, parts in layers.items()}


def differences(losses, one, two, start):
  """losses: [(run one's, run two's)] per step; one, two, start: [(variable path, value)] in the
  same order. Returns what the proofs check."""
  assert [n for n, _ in one] == [n for n, _ in two] == [n for n, _ in start]
  l_one, l_two, l_start = by_layer(one), by_layer(two), by_layer(start)
  layer_errors = {name: relative_error(l_one[name], l_two[name]) for name in l_one}
  update_one = np.concatenate([l_one[n] - l_start[n] for n in l_one])
  update_two = np.concatenate([l_two[n] - l_start[n] for n in l_one])
  return {
      "losses": losses,
      "loss_error": max(abs(a - b) / abs(a) for a, b in losses),
      "worst_layer": max(layer_errors.items(), key=lambda kv: kv[1]),
      "update_error": relative_error(update_one, update_two),
      "unmoved": [n for n in l_one if np.array_equal(l_one[n], l_start[n])],
  }


# How far above one replica's own float noise (`spread`) a difference may lie.
SPREAD_FACTOR = 3.0


def tolerances(spread=None):
  """(loss, layer, update) tolerances: the fixed ones, or SPREAD_FACTOR times what one replica
  differs from itself when only the order of its sums changes, whichever is larger. Float error
  that a network amplifies (a ReLU input rounded across the kink, then the steps that follow) is
  as large between two one-replica runs as between one replica and two; a mistake (unsynchronised
  statistics, negatives not gathered, a wrong loss scale) is not in the one-replica spread."""
  loss, layer, update = RTOL, RTOL, UPDATE_RTOL
  if spread is not None:
    loss = max(loss, SPREAD_FACTOR * spread["loss_error"])
    layer = max(layer, SPREAD_FACTOR * spread["worst_layer"][1])
    update = max(update, SPREAD_FACTOR * spread["update_error"])
  return loss, layer, update


def assert_same_training(diff, spread=None):
  assert all(np.isfinite(diff["losses"]).ravel()), diff
  # The comparison means something only if training changed every layer.
  assert not diff["unmoved"], diff
  loss, layer, update = tolerances(spread)
  assert diff["loss_error"] <= loss, (diff, spread)
  assert diff["worst_layer"][1] <= layer, (diff, spread)
  assert diff["update_error"] <= update, (diff, spread)
