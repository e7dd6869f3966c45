"""Several machines, played by two worker processes on 127.0.0.1 with a TF_CONFIG each and
--strategy=multi_worker (MultiWorkerMirroredStrategy), training on the real Fashion-MNIST records.

What is compared. Each worker's input pipeline reads its own files (worker i reads shards i, i + 2,
...), so a one-process run reading every file sees other examples and cannot match. The reference
(tests/helpers/pipeline_reference.py, run in the test's own process) therefore trains one replica in one process on exactly the examples
the workers read: at each step the two workers' batches side by side, one global batch of the same
size. It also writes the checkpoint at step 0 that both workers resume from, so both runs start
from the same weights. The per-step loss the chief logs to TensorBoard and the weights in its final
checkpoint must then equal the reference's.

Fault tolerance: a run whose workers are killed (the non-chief first: the chief then waits in a
collective, as a real job does when a machine dies) resumes from the chief's newest checkpoint when
both are relaunched with the same command.
"""

import os
import re
import signal
import time

import pytest

from helpers import equivalence
from helpers.cli import flags_of
from helpers.pipeline_reference import reference_run

pytestmark = pytest.mark.slow

WORKERS, STEPS, GLOBAL_BATCH = 2, 3, 16

COMMON = dict(architecture="resnet18", filters_factor=1, dataset="fashion_mnist",
              batch_size=GLOBAL_BATCH, random_seed=11, weight_decay=1e-4, log_every_steps=1,
              save_checkpoints_secs=3600, global_bn=True)
TASKS = {
    "supervised": dict(task="supervised", preprocessing="resize,-1_to_1", resize_size="32",
                       optimizer="sgd", lr=3e-4),
    "simclr": dict(task="simclr", preprocessing="simclr_augment", image_size=32, optimizer="lars",
                   lr=1e-4, temperature=0.5, proj_out_dim=16),
}


def run_reference(values):
  """The one-process reference (tests/helpers/pipeline_reference.py), in this process."""
  return reference_run(values, WORKERS, STEPS)


def logged_scalars(summary_dir, tag):
  """{step: value} of one scalar in a TensorBoard directory."""
  import tensorflow as tf
  values = {}
  for name in sorted(os.listdir(summary_dir)):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(summary_dir, name)):
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = float(tf.make_ndarray(value.tensor))
  return values


def checkpoint_weights(workdir, step):
  """The task weights of ckpt-<step>, in the trainer's checkpoint order."""
  import tensorflow as tf
  reader = tf.train.load_checkpoint(os.path.join(str(workdir), "ckpt-%d" % step))
  key = "weights/%d/.ATTRIBUTES/VARIABLE_VALUE"
  keys = set(reader.get_variable_to_shape_map())
  count = len([i for i in range(len(keys)) if key % i in keys])
  return [reader.get_tensor(key % i) for i in range(count)]


def checkpoint_steps(workdir):
  return sorted(int(f[len("ckpt-"):-len(".index")]) for f in os.listdir(workdir)
                if f.startswith("ckpt-") and f.endswith(".index"))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_two_workers_train_what_one_process_trains(tmp_path, fashion_mnist_dir, workers, task):
  workdir = tmp_path / "workdir"
  values = dict(COMMON, dataset_dir=fashion_mnist_dir, workdir=str(workdir), train_steps=STEPS,
                **TASKS[task])
  reference = run_reference(values)
  assert int(reference["global_step"]) == STEPS
  assert checkpoint_steps(workdir) == [0]

  job = workers(tmp_path, task, flags_of(values))
  assert job.wait() == [0, 0], job.log(0)[-3000:] + job.log(1)[-3000:]
  assert "Resumed from %s at step 0" % os.path.join(str(workdir), "ckpt-0") in job.log(0)
  # Only the chief's files are kept; the other worker's scratch directory is gone.
  assert checkpoint_steps(workdir)[-1] == STEPS
  assert not os.path.exists(workdir / ".worker_tmp"), os.listdir(workdir / ".worker_tmp")

  logged = logged_scalars(workdir / "train", "loss")
  assert sorted(logged) == list(range(1, STEPS + 1)), logged
  names = [str(reference["name_%d" % i]) for i in range(len([k for k in reference
                                                              if k.startswith("w_")]))]
  chief, start = checkpoint_weights(workdir, STEPS), checkpoint_weights(workdir, 0)
  assert len(chief) == len(names)
  losses = [(float(reference["loss_%d" % s]), logged[s + 1]) for s in range(STEPS)]
  equivalence.assert_same_training(equivalence.differences(
      losses, [(n, reference["w_%d" % i]) for i, n in enumerate(names)],
      list(zip(names, chief)), list(zip(names, start))))


def wait_for_checkpoint(workdir, job, at_least, timeout=600):
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert all(p.poll() is None for p in job.procs), job.log(0)[-3000:] + job.log(1)[-3000:]
    if os.path.isdir(workdir) and [s for s in checkpoint_steps(workdir) if s >= at_least]:
      return
    time.sleep(0.5)
  raise AssertionError("no checkpoint at step >= %d in %s" % (at_least, workdir))


def latest_step(workdir):
  import tensorflow as tf
  path = tf.train.latest_checkpoint(str(workdir))
  return int(path.rsplit("-", 1)[1])


def test_killed_workers_resume_from_the_newest_checkpoint(tmp_path, fashion_mnist_dir, workers):
  workdir = tmp_path / "workdir"
  values = dict(COMMON, dataset_dir=fashion_mnist_dir, workdir=str(workdir), train_steps=10000,
                save_checkpoints_secs=1, **TASKS["supervised"])
  job = workers(tmp_path, "first", flags_of(values))
  wait_for_checkpoint(workdir, job, at_least=2)
  job.procs[1].send_signal(signal.SIGKILL)  # a machine dies...
  job.procs[1].wait()
  time.sleep(1)
  job.procs[0].send_signal(signal.SIGKILL)  # ...and the job is torn down
  job.procs[0].wait()
  resumed = latest_step(workdir)
  assert resumed >= 2

  # The same command again (only the target moved, to keep the test short).
  values["train_steps"] = resumed + 2
  again = workers(tmp_path, "again", flags_of(values))
  assert again.wait() == [0, 0], again.log(0)[-3000:] + again.log(1)[-3000:]
  for index in range(WORKERS):
    assert "at step %d" % resumed in again.log(index), again.log(index)[-3000:]
  # The relaunched job trains the steps after the checkpoint, not from step 1 again.
  progress = [int(m.group(1)) for m in re.finditer(r"step (\d+)/%d " % (resumed + 2),
                                                   again.log(0))]
  assert progress == [resumed + 1, resumed + 2], again.log(0)[-3000:]
  assert checkpoint_steps(workdir)[-1] == resumed + 2
  assert not os.path.exists(workdir / ".worker_tmp")
