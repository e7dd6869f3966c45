"""One training run per workdir: a lock file that the running training run holds.

Two runs writing checkpoints into one workdir overwrite each other's `checkpoint` index and
results, and each resumes from the other's steps. So a training run first creates
`<workdir>/TRAINING_LOCK` exclusively (O_CREAT | O_EXCL), a JSON note of who holds it: host, pid,
the pid's start time, when it started, when it last renewed the lock, its command line and a
random token. A second run in the same workdir finds the file and stops with one line naming the
holder.

A run killed with `kill -9` (or a machine that died) leaves its lock behind, so a lock is taken
over, with a line saying so, when it is stale:
  * same host, and the pid is this very process (a leftover of an earlier run in this process);
  * same host, and the process is gone: no such pid, a zombie, or a pid reused by another process
    (its start time differs from the one recorded);
  * another host (a shared filesystem or bucket), where we cannot see its processes: the holder
    has not renewed the lock for `lease_secs`. The holder renews it every `renew_secs` from a
    daemon thread, for as long as the file still holds its token.
An unreadable or empty lock file is stale too once it is 10 s old: a run killed while writing it.
"Same host" is the same hostname, boot and pid namespace where /proc tells them: containers that
share a hostname but not their processes fall back to the lease, and a lock from before the
machine restarted is stale.

Object stores (gs://, s3://) have no exclusive create, so there the check-then-rename is only a
best effort; two runs started within the same second may both get in.
"""

import json
import os
import socket
import sys
import threading
import time
import uuid

from absl import logging
import tensorflow as tf

from tfssl.workdir import WorkdirError, atomic_write_text

LOCK_FILE = "TRAINING_LOCK"
_COMMAND_CHARS = 200
_WRITING_SECS = 10.0  # an unreadable lock younger than this is being written
_IO_ERRORS = (OSError, tf.errors.OpError)


class WorkdirLocked(WorkdirError):
  """Another live training run holds the workdir's lock; the message names it in one line."""


def lock_path(workdir):
  return os.path.join(workdir, LOCK_FILE)


def read_lock(workdir):
  """The workdir's lock as a dict, or None when there is none or it is unreadable."""
  return _read(lock_path(workdir))[1]


def machine_identity():
  """(boot id, pid namespace) of this process's machine, None where unknown: two containers on one
  host may share a hostname but not their processes, and a rebooted machine has none of its old."""
  def read(path, how):
    try:
      return how(path)
    except (OSError, ValueError):
      return None
  boot = read("/proc/sys/kernel/random/boot_id", lambda p: open(p).read().strip())
  namespace = read("/proc/self/ns/pid", lambda p: os.stat(p).st_ino)
  return boot, namespace


def process_start_time(pid):
  """When `pid` started (field 22 of /proc/<pid>/stat, in clock ticks since boot), or None where
  there is no /proc or no such process. With the pid it names one process even after pid reuse."""
  fields = _proc_stat(pid)
  return int(fields[19]) if fields else None


def _proc_stat(pid):
  # The fields after "(comm)"; comm may hold spaces and parentheses, so split after the last ")".
  # fields[0] is field 3 of proc(5) (the state), fields[19] is field 22 (the start time).
  try:
    with open("/proc/%d/stat" % pid) as f:
      stat = f.read()
  except (OSError, ValueError):
    return None
  return stat[stat.rindex(")") + 2:].split()


def _process_is_gone(pid, pid_start):
  fields = _proc_stat(pid)
  if fields is not None:
    # A zombie is a run that has ended and whose parent has not reaped it yet: it holds nothing.
    return fields[0] in ("Z", "X") or (pid_start is not None and int(fields[19]) != pid_start)
  if os.name == "nt":
    return False  # os.kill would terminate the process there, not probe it.
  # No /proc (macOS), or /proc hides other users' processes (hidepid): ask the kernel.
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except OSError:
    return False  # PermissionError: it exists and belongs to someone else.
  return False


def _is_local(path):
  return "://" not in path


def _read(path):
  """(raw bytes, lock dict): (None, None) when missing, (raw, None) when unreadable."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      raw = f.read()
  except tf.errors.NotFoundError:
    return None, None
  try:
    info = json.loads(raw.decode("utf-8"))
  except ValueError:  # UnicodeDecodeError is one too.
    return raw, None
  return raw, (info if _is_valid(info) else None)


def _is_valid(info):
  number = (int, float)
  return (isinstance(info, dict) and isinstance(info.get("host"), str)
          and isinstance(info.get("pid"), int) and isinstance(info.get("started"), number)
          and isinstance(info.get("renewed"), number) and isinstance(info.get("token"), str))


def _utc(seconds):
  return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _short_command(command):
  command = " ".join(str(command or "").split())  # One line, whatever the command held.
  if len(command) > _COMMAND_CHARS:
    command = command[:_COMMAND_CHARS - 3] + "..."
  return command


class WorkdirLock:
  """The lock of one training run on `workdir`; `with WorkdirLock(workdir): train()`."""

  def __init__(self, workdir, command=None, lease_secs=600.0, renew_secs=60.0, clock=time.time,
               hostname=None):
    self.workdir = workdir
    self.path = lock_path(workdir)
    self.command = " ".join(sys.argv) if command is None else command
    self.lease_secs = lease_secs
    self.renew_secs = renew_secs
    self.clock = clock
    self.hostname = hostname or socket.gethostname()
    self._info = None  # What we wrote, while we hold the lock.
    self._lost = False  # Another run took the lock over while we held it.
    self._stop = threading.Event()
    self._thread = None

  @property
  def held(self):
    return self._info is not None and not self._lost

  def __enter__(self):
    message = self.acquire()
    if message:
      print(message, file=sys.stderr)
    return self

  def __exit__(self, *exc_info):
    self.release()
    return False

  # ---- acquire ----
  def acquire(self):
    """Takes the lock, or raises WorkdirLocked; returns a `tfssl: ` line when it took over a stale
    lock (for the caller to print), else None. Writes nothing when it refuses."""
    if self.held:
      return None
    info = self._new_info()
    if self._create(info):
      return self._hold(info, None)
    raw, holder = _read(self.path)
    if raw is None:  # Its holder released it between our create and our read.
      why = None
    else:
      why = self._stale_reason(holder)
      if why is None:
        raise WorkdirLocked(self._locked_message(holder))
      self._remove_if_unchanged(raw)
    # Once: when another run took a stale lock over at the same time and won, it is live.
    if not self._create(info):
      raise WorkdirLocked(self._locked_message(_read(self.path)[1]))
    return self._hold(info, why)

  def _new_info(self):
    now = self.clock()
    pid = os.getpid()
    boot, namespace = machine_identity()
    return {"host": self.hostname, "pid": pid, "pid_start": process_start_time(pid),
            "boot_id": boot, "pid_namespace": namespace,
            "started": now, "renewed": now, "command": self.command, "token": uuid.uuid4().hex}

  def _hold(self, info, why):
    self._info = info
    self._lost = False
    self._stop.clear()
    self._thread = threading.Thread(target=self._renew_loop, name="tfssl-workdir-lock",
                                    daemon=True)
    self._thread.start()
    if why is None:
      return None
    return "tfssl: --workdir %s: taking over %s" % (self.workdir, why)

  def _create(self, info):
    """True when this call created the lock file, False when one exists."""
    text = json.dumps(info, sort_keys=True)
    try:
      if _is_local(self.path):
        return self._create_local(text)
      return self._create_remote(text)
    except _IO_ERRORS as e:
      raise WorkdirError("cannot create the lock file %s (%s): make --workdir writable"
                         % (self.path, str(e).splitlines()[0] if str(e) else type(e).__name__))

  def _create_local(self, text):
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    try:
      os.write(fd, text.encode("utf-8"))
      os.fsync(fd)  # The note must survive a crash of the machine, not only of the process.
    except OSError:
      os.close(fd)
      os.remove(self.path)  # A half-written lock would block the next run for nothing.
      raise
    os.close(fd)
    return True

  def _create_remote(self, text):
    # Object stores have no exclusive create: check, write under a temporary name, and rename
    # without overwriting, which narrows the race to the rename but does not close it.
    if tf.io.gfile.exists(self.path):
      return False
    # Not "<path>.tmp-…": TF's ram:// filesystem (the tests' object store) takes a file whose
    # name starts with the path for the path itself and refuses the rename.
    tmp = os.path.join(self.workdir, ".%s.tmp-%s" % (LOCK_FILE, uuid.uuid4().hex[:8]))
    try:
      with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
      tf.io.gfile.rename(tmp, self.path, overwrite=False)
      return True
    except tf.errors.AlreadyExistsError:
      return False
    finally:
      if tf.io.gfile.exists(tmp):
        tf.io.gfile.remove(tmp)

  def _stale_reason(self, holder):
    """Why the lock of `holder` may be taken over (the rest of the takeover line), or None."""
    if holder is None:
      # A run writes its lock right after creating it: an unreadable one is only stale once old.
      if self._age(self.path) < _WRITING_SECS:
        return None
      return "an unreadable lock file %s (a run killed while writing it)" % self.path
    who = "host %s, pid %d" % (holder["host"], holder["pid"])
    started = "started %s" % _utc(holder["started"])
    boot, namespace = machine_identity()
    same_boot = holder["host"] == self.hostname and holder.get("boot_id") in (None, boot)
    if holder["host"] == self.hostname and boot and holder.get("boot_id") not in (None, boot):
      return "the lock of a run from before this machine restarted (%s, %s)" % (who, started)
    if same_boot and holder.get("pid_namespace") in (None, namespace):
      if holder["pid"] == os.getpid():
        return "the lock left by an earlier run in this process (%s, %s)" % (who, started)
      if _process_is_gone(holder["pid"], holder.get("pid_start")):
        return "the lock of a run that is gone (%s, %s)" % (who, started)
      return None
    # Another host's (or another container's) processes are out of sight: only the lease tells
    # whether it still runs.
    silent = self.clock() - holder["renewed"]
    if silent > self.lease_secs:
      return ("the lock of a run whose lease expired (%s, renewed %d s ago; lease %d s)"
              % (who, silent, self.lease_secs))
    return None

  def _age(self, path):
    try:  # file times are the real clock's
      return time.time() - tf.io.gfile.stat(path).mtime_nsec / 1e9
    except _IO_ERRORS:
      return float("inf")

  def _remove_if_unchanged(self, raw):
    # Another run may have judged the same lock stale and replaced it with its own already: remove
    # only the bytes we judged, so as not to delete a live run's lock (a tiny window stays).
    try:
      if _read(self.path)[0] == raw:
        tf.io.gfile.remove(self.path)
    except tf.errors.NotFoundError:
      pass
    except _IO_ERRORS as e:
      raise WorkdirError("cannot remove the stale lock file %s (%s): remove it by hand if no run "
                         "uses --workdir %s" % (self.path, e, self.workdir))

  def _locked_message(self, holder):
    if holder is None:
      who = "its lock file %s is being written" % self.path
    else:
      who = "host %s, pid %d, started %s, renewed %d s ago: %s" % (
          holder["host"], holder["pid"], _utc(holder["started"]),
          max(0, self.clock() - holder["renewed"]), _short_command(holder.get("command")))
    return ("--workdir %s is in use by another training run (%s); wait for it to finish or stop "
            "it, or give another --workdir" % (self.workdir, who))

  # ---- renew ----
  def _renew_loop(self):
    # Event.wait, not time.sleep: release() wakes the thread at once.
    while not self._stop.wait(self.renew_secs):
      if not self._renew():
        return

  def _renew(self):
    """Rewrites the lock with a new "renewed" time; False once another run holds it."""
    # The clock first, then the check and the write, so that the two stay as close as possible.
    now = self.clock()
    mine = self._info
    if mine is None:  # Released while this thread overran release()'s wait for it.
      return False
    try:
      holder = _read(self.path)[1]
    except _IO_ERRORS as e:
      logging.warning("tfssl: cannot read the lock file %s (%s); trying again", self.path, e)
      return True
    if holder is None or holder["token"] != mine["token"]:
      self._lost = True
      logging.warning("tfssl: --workdir %s: another training run took over the lock (%s); this "
                      "run no longer holds it", self.workdir,
                      "host %s, pid %d" % (holder["host"], holder["pid"]) if holder else "removed")
      return False
    info = dict(mine, renewed=now)
    try:
      atomic_write_text(self.path, json.dumps(info, sort_keys=True))
      self._info = info
    except _IO_ERRORS as e:
      logging.warning("tfssl: cannot renew the lock file %s (%s); trying again", self.path, e)
    return True

  # ---- release ----
  def release(self):
    """Stops renewing and removes the lock file if it is still ours. Idempotent; never raises
    for the file (a run that ends must not fail on its lock)."""
    if self._info is None:
      return
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=30)  # A hung filesystem must not hang the end of the run.
      self._thread = None
    token, self._info = self._info["token"], None
    try:
      holder = _read(self.path)[1]
      if holder is not None and holder["token"] == token:
        tf.io.gfile.remove(self.path)
    except _IO_ERRORS as e:
      logging.warning("tfssl: cannot remove the lock file %s (%s); the next run takes it over",
                      self.path, e)
