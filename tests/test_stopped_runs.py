"""A run that cannot go on keeps what it had (issue 35), on real Fashion-MNIST records:

- a step whose loss is not finite stops the run (exit 3) before anything is saved from it; every
  checkpoint left is finite and the newest is the one a rerun with a sane --lr resumes from;
  --on_nonfinite=skip keeps such steps out of every variable and stops after N in a row;
- SIGTERM saves the step reached and exits 143, and the rerun resumes there; with two workers both
  stop and save at the same step; Ctrl-C is the same, and a second Ctrl-C is fatal at once;
- one training run per workdir: a second one stops with exit 2 naming the holder (a killed run's
  lock is taken over: tests/test_trainer.py); `fit` with tfssl.BackupAndRestore saves on SIGTERM.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from helpers import cli
from helpers.configs import tiny_values
from helpers.tasks import make_task

# A small supervised run of the fashion_mnist flagfile's recipe (lr 0.1, SGD with momentum).
SUPERVISED = ["--task=supervised", "--architecture=cifar_resnet18", "--filters_factor=1",
              "--dataset=fashion_mnist", "--batch_size=32", "--eval_batch_size=64",
              "--preprocessing=resize,flip_lr,-1_to_1", "--resize_size=32", "--lr=0.1",
              "--weight_decay=5e-4", "--random_seed=5", "--log_every_steps=5"]
# lr 1e30 makes the next steps' loss or gradient overflow within a few steps.
DIVERGE = ["--lr=1e30"]


def _args(workdir, data_dir, steps, *more):
  return SUPERVISED + ["--workdir=%s" % workdir, "--dataset_dir=%s" % data_dir,
                       "--train_steps=%d" % steps] + list(more)


def _checkpoint_steps(workdir):
  return sorted(int(m.group(1)) for name in os.listdir(workdir)
                for m in [re.match(r"ckpt-(\d+)\.index$", name)] if m)


def _all_finite(path):
  reader = tf.train.load_checkpoint(path)
  for name, dtype in reader.get_variable_to_dtype_map().items():
    if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
      return False
  return True


def _stop_lines(stderr):
  return [line for line in stderr.splitlines() if line.startswith("tfssl:")]


@pytest.mark.slow
def test_a_diverging_run_stops_before_saving_and_resumes_from_its_last_finite_checkpoint(
    tmp_path, fashion_mnist_dir):
  workdir = tmp_path / "w"
  first = cli.train_and_eval(_args(workdir, fashion_mnist_dir, 10))
  assert first.returncode == 0, first.stderr[-3000:]
  # No save in between: a step at lr 1e30 may leave finite weights too large to train on.
  run = cli.train_and_eval(_args(workdir, fashion_mnist_dir, 60, *DIVERGE,
                                 "--save_checkpoints_secs=3600"))
  assert run.returncode == 3, run.stderr[-3000:]
  lines = _stop_lines(run.stderr)
  assert len(lines) == 1 and lines[0].startswith("tfssl: error: the loss or its gradient was not "
                                                 "finite at step "), lines
  bad_step = int(re.search(r"not finite at step (\d+)", lines[0]).group(1))
  steps = _checkpoint_steps(workdir)
  latest = tf.train.latest_checkpoint(str(workdir))
  assert 10 < bad_step < 60
  assert latest.endswith("ckpt-%d" % max(steps)) and max(steps) < bad_step
  assert ("the newest checkpoint, %s, is finite" % latest) in lines[0]
  assert all(_all_finite(str(workdir / ("ckpt-%d" % s))) for s in steps)
  # A rerun with a sane learning rate continues from that checkpoint.
  again = cli.train_and_eval(_args(workdir, fashion_mnist_dir, max(steps) + 3))
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from %s at step %d" % (latest, max(steps)) in again.stderr
  assert tf.train.latest_checkpoint(str(workdir)).endswith("ckpt-%d" % (max(steps) + 3))


@pytest.mark.slow
def test_skip_counts_the_nonfinite_steps_and_stops_after_n_in_a_row(tmp_path, fashion_mnist_dir):
  workdir = tmp_path / "w"
  assert cli.train_and_eval(_args(workdir, fashion_mnist_dir, 5)).returncode == 0
  # A save after every step: those of the skipped steps' state must be finite too.
  run = cli.train_and_eval(_args(workdir, fashion_mnist_dir, 60, *DIVERGE, "--on_nonfinite=skip",
                                 "--max_nonfinite_steps=3", "--log_every_steps=1",
                                 "--save_checkpoints_secs=1"))
  assert run.returncode == 3, run.stderr[-3000:]
  lines = _stop_lines(run.stderr)
  assert len(lines) == 1 and re.search(r"3 steps in a row were not finite after step \d+ "
                                       r"\(--on_nonfinite=skip, --max_nonfinite_steps=3; "
                                       r"3 skipped in all\)", lines[0]), lines
  # Skipped steps are not steps: the log lines count them while the step stays.
  counted = [int(n) for n in re.findall(r"skipped_steps (\d+)", run.stderr)]
  assert counted[:1] == [0] and 1 <= max(counted) <= 3, counted
  assert all(_all_finite(str(workdir / ("ckpt-%d" % s))) for s in _checkpoint_steps(workdir))


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_skipped_step_changes_no_variable(fashion_mnist_dir, replicas):
  """One real batch, then the same batch with a NaN pixel in the last image (on the second
  replica's half when there are two): that step leaves every weight, BatchNorm statistic and
  optimizer slot as it was, and counts; the next finite step trains and resets the count."""
  from tfssl.data import datasets
  from tfssl.config import Config
  values = tiny_values("supervised", dataset_dir=fashion_mnist_dir, batch_size=8, lr=0.1,
                       preprocessing="resize,-1_to_1", resize_size="32", on_nonfinite="skip",
                       max_nonfinite_steps=5)
  batch = next(iter(datasets.make_input_fn(Config.make(**values), "train", True)(None)))
  image = batch["image"].numpy()
  image[-1, 0, 0, 0] = np.nan
  poisoned = dict(batch, image=tf.constant(image))
  from tfssl.runtime.strategy import mirrored_strategy, split_cpu
  # The process's one strategy over the two CPU devices (conftest splits the CPU).
  strategy = mirrored_strategy(split_cpu(2)) if replicas == 2 else tf.distribute.get_strategy()
  with strategy.scope():
    task = make_task(batch, **values)

  @tf.function
  def step(features):
    dataset = strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.split(v, replicas)[ctx.replica_id_in_sync_group]
                     for k, v in features.items()})
    strategy.run(task.train_step, args=(dataset,))

  def state():
    return [np.array(v.numpy()) for v in task.weights + task.optimizer.variables]

  step(batch)
  before = state()
  step(poisoned)
  after = state()
  guard = task.step_guard
  assert int(guard.nonfinite_steps.numpy()) == 1 and int(guard.consecutive.numpy()) == 1
  assert all(np.array_equal(a, b) for a, b in zip(before, after))
  step(batch)
  assert int(guard.consecutive.numpy()) == 0 and int(guard.nonfinite_steps.numpy()) == 1
  assert not all(np.array_equal(a, b) for a, b in zip(after, state()))
  assert all(np.all(np.isfinite(v)) for v in state())


def test_ctrl_c_is_recorded_once_and_a_second_one_is_fatal():
  from tfssl.runtime.stop_signals import StopSignals, exit_code
  outer = signal.getsignal(signal.SIGINT)
  with StopSignals() as signals:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs between bytecodes
    assert signals.received == signal.SIGINT and signals.name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL  # a second one ends the process
    assert exit_code(signals.received) == 130
  assert signal.getsignal(signal.SIGINT) is outer


def _read(path):
  return path.read_text() if path.exists() else ""


def _wait_for(condition, proc, log, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if condition():
      return
    assert proc.poll() is None, "the run ended early: " + _read(log)[-3000:]
    time.sleep(0.2)
  raise AssertionError("timed out: " + _read(log)[-3000:])


@pytest.mark.slow
def test_sigterm_saves_the_step_reached_and_a_second_run_meanwhile_is_refused(
    tmp_path, fashion_mnist_dir):
  workdir, log = tmp_path / "w", tmp_path / "run.log"
  args = _args(workdir, fashion_mnist_dir, 5000, "--save_checkpoints_secs=3600",
               "--log_every_steps=1")
  with open(log, "w") as out:
    proc = subprocess.Popen([sys.executable, "-m", "tfssl.train_and_eval"] + args,
                            stdout=out, stderr=subprocess.STDOUT, env=cli.child_env())
  try:
    _wait_for(lambda: len(re.findall(r"step (\d+)/5000", _read(log))) >= 3, proc, log)
    # A second training run in the held workdir: one line naming the holder, exit 2, no writes.
    def held():  # the holder renews its lock every minute: all of it but that time
      return ((workdir / "flags.json").read_bytes(), (workdir / "task_info.json").read_bytes(),
              dict(json.loads((workdir / "TRAINING_LOCK").read_text()), renewed=None))

    written = held()
    second = cli.train_and_eval(args)
    assert second.returncode == 2, second.stderr[-3000:]
    lines = _stop_lines(second.stderr)
    assert len(lines) == 1 and lines[0].startswith("tfssl: error: --workdir %s is in use by "
                                                   "another training run" % workdir), lines
    assert "pid %d" % proc.pid in lines[0]
    assert held() == written
    reached = max(int(s) for s in re.findall(r"step (\d+)/5000", _read(log)))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, _read(log)[-3000:]
  finally:
    if proc.poll() is None:
      proc.kill()
  text = _read(log)
  stopped = re.search(r"^tfssl: stopped by SIGTERM at step (\d+) of 5000: saved (\S+); run the "
                      r"same command to resume$", text, re.M)
  assert stopped, text[-3000:]
  saved = int(stopped.group(1))
  assert reached <= saved < 5000
  assert _checkpoint_steps(workdir) == [saved]
  assert not (workdir / "TRAINING_LOCK").exists()
  again = cli.train_and_eval(_args(workdir, fashion_mnist_dir, saved + 2))
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from %s at step %d" % (stopped.group(2), saved) in again.stderr


@pytest.mark.slow
def test_sigterm_to_one_of_two_workers_saves_both_at_one_step(tmp_path, fashion_mnist_dir, workers):
  workdir = tmp_path / "w"

  def args(steps):
    return _args(workdir, fashion_mnist_dir, steps, "--save_checkpoints_secs=3600",
                 "--log_every_steps=1")

  job = workers(tmp_path, "first", args(5000))
  _wait_for(lambda: len(re.findall(r"step (\d+)/5000", job.log(0))) >= 2, job.procs[0],
            job.logs[0])
  job.procs[1].send_signal(signal.SIGTERM)  # the non-chief only: the chief learns it in a step
  codes = job.wait(timeout=180)
  texts = [job.log(0), job.log(1)]
  assert codes == [143, 143], [t[-2000:] for t in texts]
  found = [re.search(r"^tfssl: stopped by (SIGTERM|a signal on another worker) at step (\d+) of "
                     r"5000: saved", t, re.M) for t in texts]
  assert all(found), [t[-2000:] for t in texts]
  assert [f.group(1) for f in found] == ["a signal on another worker", "SIGTERM"]
  saved = int(found[0].group(2))
  assert int(found[1].group(2)) == saved and _checkpoint_steps(workdir) == [saved]
  again = workers(tmp_path, "again", args(saved + 2))
  codes = again.wait(timeout=240)
  texts = [again.log(0), again.log(1)]
  assert codes == [0, 0], [t[-2000:] for t in texts]
  assert all("Resumed from" in t and "at step %d" % saved in t for t in texts)
  assert _checkpoint_steps(workdir)[-1] == saved + 2


@pytest.mark.slow
def test_two_workers_in_a_held_workdir_both_stop_with_exit_2(tmp_path, fashion_mnist_dir, workers):
  """The chief cannot take the lock: the other worker must not wait for it in a collective."""
  from tfssl.runtime import workdir_lock
  workdir = tmp_path / "w"
  workdir.mkdir()
  holder = subprocess.Popen(["sleep", "300"])
  try:
    # The lock as a live run on this machine holds it (`sleep` plays that run).
    boot, namespace = workdir_lock.machine_identity()
    (workdir / workdir_lock.LOCK_FILE).write_text(json.dumps(dict(
        host=socket.gethostname(), pid=holder.pid, boot_id=boot, pid_namespace=namespace,
        pid_start=workdir_lock.process_start_time(holder.pid), started=time.time(),
        renewed=time.time(), command="the holder", token="theirs")))
    job = workers(tmp_path, "held", _args(workdir, fashion_mnist_dir, 5))
    codes = job.wait(timeout=240)
    texts = [job.log(0), job.log(1)]
    assert codes == [2, 2], [t[-2000:] for t in texts]
    assert "is in use by another training run (host" in texts[0] and "pid %d" % holder.pid in texts[0]
    assert "the chief worker could not take --workdir" in texts[1]
    assert sorted(os.listdir(workdir)) == ["TRAINING_LOCK"]
  finally:
    holder.kill()
    holder.wait()


@pytest.mark.slow
def test_fit_with_backup_and_restore_saves_on_sigterm_and_resumes(tmp_path, fashion_mnist_dir):
  import keras
  import tfssl
  from tfssl.config import Config
  config = Config.make(**tiny_values("rotation", dataset_dir=fashion_mnist_dir, batch_size=8,
                                     preprocessing="resize,-1_to_1,rotate", resize_size="32",
                                     lr=0.05, train_steps=40, random_seed=3))
  backup = str(tmp_path / "backup")

  class TermAt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if batch == 2:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)

  task = tfssl.build_task(config)
  keeper = tfssl.BackupAndRestore(backup, exit_on_signal=False)
  task.fit(tfssl.training_dataset(config), epochs=2, steps_per_epoch=20, verbose=0,
           callbacks=[TermAt(), keeper])
  assert keeper.stopped_by == signal.SIGTERM
  assert int(task.optimizer.iterations.numpy()) == 3  # stopped after the batch it was in
  weights = [w.numpy().copy() for w in task.weights]
  meta = json.loads(open(os.path.join(backup, "training_metadata.json")).read())
  assert meta["epoch"] == 0

  # A new process would rebuild the task; fit restores the backup before its first step.
  class Check(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
      self.restored_step = int(self.model.optimizer.iterations.numpy())
      self.restored = [w.numpy().copy() for w in self.model.weights]

  check = Check()
  fresh = tfssl.build_task(config)
  fresh.fit(tfssl.training_dataset(config), epochs=1, steps_per_epoch=2, verbose=0,
            callbacks=[tfssl.BackupAndRestore(backup), check])
  assert check.restored_step == 3
  assert all(np.array_equal(a, b) for a, b in zip(weights, check.restored))
  assert not os.path.exists(backup)  # a finished fit removes its backup, as Keras's does
