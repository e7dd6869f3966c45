"""N replicas equal one: the gathering losses on 2 replicas against one replica on the same batch.

The replicas are 2 logical CPU devices under MirroredStrategy (the test process's own, split when
the session starts: tests/conftest.py), and 2 localhost workers of MultiWorkerMirroredStrategy. A
worker needs its own process, so for those this file runs itself as child processes (`python
tests/test_losses_replicas.py multi_worker OUT.npz INDEX PORTS`). Each side computes every loss and
input gradient per replica and saves them; the tests compare them with one replica's values.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # helpers, also in the children
from helpers.ports import free_ports  # noqa: E402

REPLICAS, LOCAL = 2, 4
GLOBAL = REPLICAS * LOCAL
QUEUE_LOCAL = 3


def _inputs():
  rng = np.random.default_rng(42)

  def draw(*shape):
    return np.tanh(rng.normal(size=shape)).astype(np.float32)

  return {
      "z1": draw(GLOBAL, 6), "z2": draw(GLOBAL, 6), "aux": draw(GLOBAL, 6),
      "s0": draw(GLOBAL, 5), "s1": draw(GLOBAL, 5), "s2": draw(GLOBAL, 5),
      # Each replica keeps its own queue (as main_swav.py's per-GPU queue): [replica, Q, K].
      "queue0": draw(REPLICAS, QUEUE_LOCAL, 5), "queue1": draw(REPLICAS, QUEUE_LOCAL, 5),
  }


# ---- the child: 2 replicas -------------------------------------------------------------------

def _losses_and_input_grads(losses, d, queues, replicas):
  """Every gathering loss and the gradient of (loss / replicas) wrt each local input, the scaling
  Task.minimize applies."""
  import tensorflow as tf
  out = {"concat": losses.cross_replica_concat(d["z1"])}
  watched = {name: d[name] for name in ("z1", "z2", "aux", "s0", "s1", "s2")}
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(list(watched.values()))
    out["nt_xent"], out["logits_ab"], out["labels"] = losses.nt_xent(d["z1"], d["z2"], 0.5)
    out["gnt_xent"] = losses.gnt_xent(d["z1"], d["z2"], d["aux"], 0.1)
    out["swav"] = losses.swav_loss([d["s0"], d["s1"], d["s2"]], [0, 1], 0.1, 0.05, 3,
                                   queue_scores=queues)
    scaled = {name: out[name] / replicas for name in ("nt_xent", "gnt_xent", "swav")}
  for loss_name, inputs in (("nt_xent", ("z1", "z2")), ("gnt_xent", ("z1", "z2", "aux")),
                            ("swav", ("s0", "s1", "s2"))):
    for name in inputs:
      out["grad_%s_%s" % (loss_name, name)] = tape.gradient(scaled[loss_name], watched[name])
  out["codes"] = losses.sinkhorn(d["s0"], 0.05, 3)
  return out


def _child(kind, path, worker=0, ports=""):
  """Runs the losses on 2 replicas: 2 logical CPUs under MirroredStrategy, or one of 2
  MultiWorkerMirroredStrategy workers on localhost (one CPU replica each)."""
  if kind == "multi_worker":
    cluster = {"worker": ["localhost:%s" % p for p in ports.split(",")]}
    os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster,
                                          "task": {"type": "worker", "index": worker}})
  import tensorflow as tf
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from tfssl import losses

  if kind == "mirrored":
    from tfssl.runtime.strategy import mirrored_strategy, split_cpu
    strategy = mirrored_strategy(split_cpu(REPLICAS))
  else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  assert strategy.num_replicas_in_sync == REPLICAS
  data = _inputs()

  def local_part(ctx):
    r = ctx.replica_id_in_sync_group
    part = {k: v[r * LOCAL:(r + 1) * LOCAL] for k, v in data.items() if not k.startswith("queue")}
    part["queue0"], part["queue1"] = data["queue0"][r], data["queue1"][r]
    return {k: tf.constant(v) for k, v in part.items()}

  distributed = strategy.experimental_distribute_values_from_function(local_part)

  @tf.function
  def step(d):
    def replica_fn(d):
      out = _losses_and_input_grads(losses, d, [d["queue0"], d["queue1"]], REPLICAS)
      out["replica"] = losses.replica_id()
      return out
    return strategy.run(replica_fn, args=(d,))

  results = step(distributed)
  flat = {}
  local_ids = [int(r) for r in strategy.experimental_local_results(results.pop("replica"))]
  for name, value in results.items():
    for r, local in zip(local_ids, strategy.experimental_local_results(value)):
      flat["%s/%d" % (name, r)] = local.numpy()
  np.savez(path, **flat)


def _run_children(kind, directory):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  env.pop("TF_CONFIG", None)
  me = os.path.abspath(__file__)
  if kind == "mirrored":
    # The test process's own two logical CPUs (tests/conftest.py): no child needed.
    _child("mirrored", str(directory / "0.npz"))
    with np.load(directory / "0.npz") as part:
      return dict(part)
  ports = ",".join(str(p) for p in free_ports(REPLICAS))
  commands = [[sys.executable, me, kind, str(directory / ("%d.npz" % w)), str(w), ports]
              for w in range(REPLICAS)]
  procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for c in commands]
  try:
    logs = [p.communicate(timeout=600)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-6000:]
  merged = {}
  for i in range(len(commands)):
    with np.load(directory / ("%d.npz" % i)) as part:
      merged.update(part)
  return merged


# ---- the tests: one replica here ---------------------------------------------------------------

@pytest.fixture(scope="module",
                params=["mirrored", pytest.param("multi_worker", marks=pytest.mark.slow)])
def replicated(request, tmp_path_factory):
  return _run_children(request.param, tmp_path_factory.mktemp(request.param))


def _per_replica(results, name):
  return [results["%s/%d" % (name, r)] for r in range(REPLICAS)]


@pytest.fixture(scope="module")
def single():
  import tensorflow as tf
  from tfssl import losses
  d = {k: tf.constant(v) for k, v in _inputs().items()}
  queues = [tf.reshape(d["queue0"], [-1, 5]), tf.reshape(d["queue1"], [-1, 5])]
  return {k: v.numpy() for k, v in _losses_and_input_grads(losses, d, queues, 1).items()}


def test_cross_replica_concat_puts_replica_zero_first(replicated):
  data = _inputs()
  for gathered in _per_replica(replicated, "concat"):
    np.testing.assert_array_equal(gathered, data["z1"])


@pytest.mark.parametrize("name", ["nt_xent", "gnt_xent", "swav"])
def test_mean_of_replica_losses_equals_the_single_replica_loss(replicated, single, name):
  per_replica = _per_replica(replicated, name)
  np.testing.assert_allclose(np.mean(per_replica), single[name], rtol=1e-5)
  # The replicas really saw different anchors (else the test would prove nothing).
  assert abs(per_replica[0] - per_replica[1]) > 1e-4


@pytest.mark.parametrize("name", ["grad_nt_xent_z1", "grad_nt_xent_z2", "grad_gnt_xent_z1",
                                  "grad_gnt_xent_z2", "grad_gnt_xent_aux", "grad_swav_s0",
                                  "grad_swav_s1", "grad_swav_s2"])
def test_input_gradients_equal_the_single_replica_gradients(replicated, single, name):
  # Each replica's gradient of its loss / replicas reaches the rows other replicas made through
  # the gather, so the concatenated local gradients equal the one-replica gradient.
  got = np.concatenate(_per_replica(replicated, name))
  np.testing.assert_allclose(got, single[name], rtol=1e-4, atol=1e-6)


def test_nt_xent_positives_are_offset_by_the_replica(replicated):
  for r, labels in enumerate(_per_replica(replicated, "labels")):
    assert labels.shape == (LOCAL, 2 * GLOBAL)
    np.testing.assert_array_equal(np.argmax(labels, 1), r * LOCAL + np.arange(LOCAL))
  for r, logits in enumerate(_per_replica(replicated, "logits_ab")):
    assert logits.shape == (LOCAL, GLOBAL)


def test_sinkhorn_codes_equal_the_single_replica_codes(replicated, single):
  got = np.concatenate(_per_replica(replicated, "codes"))
  np.testing.assert_allclose(got, single["codes"], rtol=1e-5, atol=1e-7)


if __name__ == "__main__":
  _child("multi_worker", sys.argv[2], int(sys.argv[3]), sys.argv[4])
