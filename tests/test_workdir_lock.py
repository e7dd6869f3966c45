"""tfssl.runtime.workdir_lock: one training run per workdir; stale locks are taken over.

The holders that are not this process are real processes (`sleep`, `true`) or lock files written
as another host would, and time is a fake clock, so no test waits for a lease to run out.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tfssl.runtime import workdir_lock
from tfssl.runtime.workdir_lock import LOCK_FILE, WorkdirLock, WorkdirLocked, read_lock
from tfssl.workdir import WorkdirError, atomic_write_text

HOST = socket.gethostname()
LINUX = sys.platform.startswith("linux")
COMMAND = "python -m tfssl.train_and_eval --task=rotation --workdir=/tmp/w"


def _write_lock(workdir, **fields):
  """A lock file as another run writes it; returns its bytes."""
  info = {"host": HOST, "pid": 1, "pid_start": None, "started": 1000.0, "renewed": 1000.0,
          "command": COMMAND, "token": uuid.uuid4().hex}
  info.update(fields)
  raw = json.dumps(info, sort_keys=True).encode()
  (workdir / LOCK_FILE).write_bytes(raw)
  return raw


def _files(workdir):
  return {p.name: p.read_bytes() for p in workdir.iterdir()}


def _dead_pid():
  done = subprocess.Popen(["true"])
  done.wait()
  return done.pid


def _poll(condition, secs=5.0):
  deadline = time.monotonic() + secs
  while not condition():
    if time.monotonic() > deadline:
      return False
    time.sleep(0.01)
  return True


@pytest.fixture
def sleeper():
  proc = subprocess.Popen(["sleep", "60"])
  try:
    yield proc.pid
  finally:
    proc.kill()
    proc.wait()


def test_acquire_writes_the_holder_and_release_frees_the_workdir(tmp_path):
  lock = WorkdirLock(str(tmp_path), command=COMMAND)
  assert lock.acquire() is None
  try:
    info = read_lock(str(tmp_path))
    assert (info["host"], info["pid"], info["command"]) == (HOST, os.getpid(), COMMAND)
    assert len(info["token"]) == 32
    assert info["pid_start"] == workdir_lock.process_start_time(os.getpid())
    assert lock.held
  finally:
    lock.release()
  assert not (tmp_path / LOCK_FILE).exists() and not lock.held
  again = WorkdirLock(str(tmp_path))
  assert again.acquire() is None
  again.release()


def test_a_live_run_on_this_host_is_refused_and_nothing_is_written(tmp_path, sleeper):
  _write_lock(tmp_path, pid=sleeper, pid_start=workdir_lock.process_start_time(sleeper),
              command=COMMAND + " " + "x" * 500)
  before = _files(tmp_path)
  with pytest.raises(WorkdirLocked) as refused:
    WorkdirLock(str(tmp_path)).acquire()
  message = str(refused.value)
  assert "\n" not in message
  assert "--workdir %s" % tmp_path in message
  assert "host %s, pid %d," % (HOST, sleeper) in message
  assert COMMAND in message and "x" * 300 not in message  # The long command is cut short.
  assert _files(tmp_path) == before


def test_a_reused_pid_is_a_gone_run(tmp_path, sleeper):
  # The pid is alive, but it is another process than the one that wrote the lock.
  start = workdir_lock.process_start_time(sleeper)
  if not LINUX:  # only Linux's /proc tells a process's start time
    pytest.skip("no /proc on %s" % sys.platform)
  assert start is not None
  _write_lock(tmp_path, pid=sleeper, pid_start=start - 1)
  lock = WorkdirLock(str(tmp_path))
  try:
    assert "gone" in lock.acquire()
  finally:
    lock.release()


def test_the_lock_of_a_dead_run_is_taken_over(tmp_path):
  dead = _dead_pid()
  _write_lock(tmp_path, pid=dead, token="old")
  lock = WorkdirLock(str(tmp_path))
  try:
    message = lock.acquire()
    assert message.startswith("tfssl: --workdir %s: " % tmp_path) and "\n" not in message
    assert "gone" in message and "pid %d," % dead in message
    info = read_lock(str(tmp_path))
    assert info["pid"] == os.getpid() and info["token"] not in ("old", None)
  finally:
    lock.release()


def test_another_hosts_lock_counts_until_its_lease_expires(tmp_path):
  now = 50000.0
  # Our own pid on another host is another process: only the lease may free it.
  _write_lock(tmp_path, host="elsewhere", pid=os.getpid(), renewed=now - 10)
  with pytest.raises(WorkdirLocked, match="host elsewhere, pid %d, .*renewed 10 s ago" % os.getpid()):
    WorkdirLock(str(tmp_path), lease_secs=600, clock=lambda: now).acquire()
  assert read_lock(str(tmp_path))["host"] == "elsewhere"

  _write_lock(tmp_path, host="elsewhere", pid=os.getpid(), renewed=now - 601)
  lock = WorkdirLock(str(tmp_path), lease_secs=600, clock=lambda: now)
  try:
    message = lock.acquire()
    assert "lease expired" in message and "host elsewhere" in message
    assert read_lock(str(tmp_path))["host"] == HOST
  finally:
    lock.release()


@pytest.mark.parametrize("raw", [b"", b'{"host": "h", "pi', b"\xff\xfe", b'{"pid": 1}'])
def test_an_unreadable_lock_is_taken_over_once_it_is_not_being_written(tmp_path, raw):
  path = tmp_path / LOCK_FILE
  path.write_bytes(raw)
  # Just created: a run may be writing it this instant.
  with pytest.raises(WorkdirLocked, match="is being written"):
    WorkdirLock(str(tmp_path)).acquire()
  assert path.read_bytes() == raw
  old = time.time() - 60
  os.utime(path, (old, old))
  lock = WorkdirLock(str(tmp_path))
  try:
    assert "unreadable" in lock.acquire()
    assert read_lock(str(tmp_path))["pid"] == os.getpid()
  finally:
    lock.release()


def test_a_lock_from_before_a_restart_or_from_another_container(tmp_path):
  from tfssl.runtime.workdir_lock import machine_identity
  boot, namespace = machine_identity()
  if not LINUX:  # the boot id and pid namespace come from Linux's /proc
    pytest.skip("no /proc on %s" % sys.platform)
  assert boot and namespace
  live = subprocess.Popen(["sleep", "60"])
  try:
    # The live pid under another boot: a run from before the machine restarted.
    _write_lock(tmp_path, pid=live.pid, boot_id="another-boot", pid_namespace=namespace)
    lock = WorkdirLock(str(tmp_path))
    try:
      assert "before this machine restarted" in lock.acquire()
    finally:
      lock.release()
    # The same hostname and boot but another pid namespace (a container): only its lease counts,
    # so a fresh one is refused although its pid is gone here.
    now = time.time()
    _write_lock(tmp_path, pid=_dead_pid(), boot_id=boot, pid_namespace=namespace + 1, renewed=now)
    with pytest.raises(WorkdirLocked):
      WorkdirLock(str(tmp_path), clock=lambda: now).acquire()
  finally:
    live.kill()
    live.wait()


def test_a_missing_workdir_is_an_error_and_is_not_created(tmp_path):
  missing = tmp_path / "not_made"
  with pytest.raises(WorkdirError, match="cannot create the lock file"):
    WorkdirLock(str(missing)).acquire()
  assert not missing.exists()


class _HoldableClock:
  """Moves 10 s a call. After hold(), the next call (the renewal thread's, which reads the clock
  before the file) waits in it until go(): the test can replace the file between two renewals."""

  def __init__(self):
    self.now = 1000.0
    self.waiting = threading.Event()
    self.gate = threading.Event()
    self.gate.set()

  def __call__(self):
    if not self.gate.is_set():
      self.waiting.set()
      self.gate.wait(10)
    self.now += 10
    return self.now

  def hold(self):
    self.gate.clear()
    assert self.waiting.wait(5), "the renewal thread never came back to the clock"

  def go(self):
    self.gate.set()


def test_renewal_moves_the_lease_on_and_stops_when_another_run_takes_over(tmp_path):
  clock = _HoldableClock()
  lock = WorkdirLock(str(tmp_path), renew_secs=0.05, clock=clock)
  lock.acquire()
  try:
    first = read_lock(str(tmp_path))["renewed"]
    assert _poll(lambda: read_lock(str(tmp_path))["renewed"] > first)

    clock.hold()
    path = str(tmp_path / LOCK_FILE)
    foreign = dict(read_lock(str(tmp_path)), host="elsewhere", token="theirs")
    atomic_write_text(path, json.dumps(foreign))
    clock.go()
    assert _poll(lambda: not lock.held)
    assert read_lock(str(tmp_path)) == foreign  # Not renewed over.
  finally:
    clock.go()
    lock.release()
  assert read_lock(str(tmp_path)) == foreign  # Not removed: it is theirs.


def test_release_is_idempotent_and_the_context_manager_releases_on_error(tmp_path):
  lock = WorkdirLock(str(tmp_path))
  lock.release()  # Never acquired: nothing to do.
  lock.acquire()
  lock.release()
  lock.release()
  assert not (tmp_path / LOCK_FILE).exists()

  with pytest.raises(KeyError):
    with WorkdirLock(str(tmp_path)) as held:
      assert held.held and (tmp_path / LOCK_FILE).exists()
      raise KeyError("training failed")
  assert not held.held and not (tmp_path / LOCK_FILE).exists()


def test_object_store_paths_lock_through_gfile():
  workdir = "ram://tfssl-lock-%s" % uuid.uuid4().hex
  import tensorflow as tf
  tf.io.gfile.makedirs(workdir)
  lock = WorkdirLock(workdir)
  assert lock.acquire() is None
  try:
    assert read_lock(workdir)["token"] == lock._info["token"]
    with pytest.raises(WorkdirLocked):
      WorkdirLock(workdir, hostname="elsewhere").acquire()
  finally:
    lock.release()
  assert read_lock(workdir) is None
  assert tf.io.gfile.listdir(workdir) == []  # No temporary file left behind.
