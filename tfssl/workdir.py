"""The workdir: what a run leaves on disk, written so that nothing complete is ever lost.

Every file is written under a temporary name and renamed (checkpoints by TF's CheckpointManager,
which updates its `checkpoint` index only after the data files are complete), so a `kill -9` at
any moment leaves the newest complete checkpoint in place and the next run resumes from it.
"""

import json
import os
import uuid

from absl import logging
import tensorflow as tf

# What a checkpoint is; a workdir holding a checkpoint of something else is refused.
IDENTITY_FIELDS = ("task", "architecture", "filters_factor", "root_conv_stride", "mode", "last_relu")
INFO_FILE = "task_info.json"
RESULTS_FILE = "eval_results.json"
DONE_FILE = "TRAINING_IS_DONE"


FLAGS_FILE = "flags.json"


class WorkdirError(RuntimeError):
  """A workdir problem the user must fix; its message is one line naming the path and the fix."""


def training_config(workdir, **overrides):
  """The Config of the workdir's newest run (its flags.json), at this path (the folder may have
  moved since), with the `overrides` that are not None applied; ValueError without flags.json."""
  from tfssl.config import Config
  path = os.path.join(workdir or "", FLAGS_FILE)
  if not workdir or not tf.io.gfile.exists(path):
    raise ValueError("%s has no %s: point --workdir at a tfssl training workdir" % (workdir, FLAGS_FILE))
  with tf.io.gfile.GFile(path) as f:
    values = json.load(f)
  values.update({k: v for k, v in overrides.items() if v is not None})
  values["workdir"] = workdir
  return Config.make(**values)


def atomic_write_text(path, text):
  tmp = "%s.tmp-%s" % (path, uuid.uuid4().hex[:8])
  try:
    with tf.io.gfile.GFile(tmp, "w") as f:
      f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
  finally:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)


class Workdir:
  """One run's directory: identity guard, checkpoints, summaries, results, done marker."""

  def __init__(self, path, config):
    if not path:
      raise WorkdirError("--workdir is required: give a directory for checkpoints and summaries")
    self.path = path
    self.config = config
    self._writers = {}

  def _file(self, name):
    return os.path.join(self.path, name)

  def identity(self):
    return {k: getattr(self.config, k) for k in IDENTITY_FIELDS}

  def make(self):
    """Creates the workdir (and its parents) if it is not there."""
    try:
      tf.io.gfile.makedirs(self.path)
    except (tf.errors.OpError, OSError) as e:
      raise WorkdirError("cannot create --workdir %s (%s): choose a writable directory" % (self.path, e))

  def claim(self):
    """Creates the workdir, or checks that its checkpoints are of this task and network."""
    self.make()
    info_path = self._file(INFO_FILE)
    mine = self.identity()
    if tf.io.gfile.exists(info_path):
      with tf.io.gfile.GFile(info_path) as f:
        theirs = json.load(f)
      diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
      if diff:
        what = ", ".join("%s=%s (this run: %s)" % (k, a, b) for k, (a, b) in sorted(diff.items()))
        raise WorkdirError("--workdir %s holds checkpoints of another run: %s; use a new --workdir "
                           "or delete the old one" % (self.path, what))
    elif tf.train.latest_checkpoint(self.path):
      raise WorkdirError("--workdir %s holds checkpoints that tfssl did not write (no %s); use a new "
                         "--workdir" % (self.path, INFO_FILE))
    else:
      self._write(INFO_FILE, json.dumps(mine, indent=2, sort_keys=True))

  def write_flags(self):
    self._write(FLAGS_FILE, self.config.to_json())

  def _write(self, name, text):
    try:
      atomic_write_text(self._file(name), text)
    except (tf.errors.OpError, OSError) as e:
      raise WorkdirError("cannot write %s (%s): free space or make --workdir writable; "
                         "the newest complete checkpoint is intact" % (self._file(name), e))

  # ---- checkpoints ----
  def checkpoint_manager(self, checkpoint, keep_checkpoint_max):
    cfg = self.config
    return tf.train.CheckpointManager(
        checkpoint, self.path, max_to_keep=keep_checkpoint_max,
        keep_checkpoint_every_n_hours=cfg.keep_checkpoint_every_n_hours, checkpoint_name="ckpt")

  def restore_latest(self, checkpoint):
    # Every worker restores from the chief's workdir (non-chiefs only *write* elsewhere), so a
    # relaunched multi-worker job resumes with the same weights everywhere.
    path = tf.train.latest_checkpoint(self.config.workdir)
    if not path:
      return None
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      raise WorkdirError("cannot resume from %s (%s): the checkpoint does not match this task/network; "
                         "use a new --workdir" % (path, str(e).splitlines()[0][:200]))
    return path

  def save(self, manager, step):
    # TF's saver logs a "Sharding callback duration" INFO line per save: noise on the console.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)
    try:
      path = manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
      raise WorkdirError("cannot save a checkpoint in %s (%s): free space or make it writable; the "
                         "newest complete checkpoint (%s) is intact" % (self.path, str(e).splitlines()[0],
                                                                       manager.latest_checkpoint))
    finally:
      logging.set_verbosity(verbosity)
    logging.info("Saved checkpoint %s", path)
    return path

  def mark_done(self):
    self._write(DONE_FILE, "")

  # ---- summaries and results ----
  def summary_writer(self, name):
    if name not in self._writers:
      self._writers[name] = tf.summary.create_file_writer(self._file(name))
    return self._writers[name]

  def read_results(self):
    path = self._file(RESULTS_FILE)
    if not tf.io.gfile.exists(path):
      return []
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)

  def append_result(self, entry):
    results = self.read_results()
    results.append(entry)
    self._write(RESULTS_FILE, json.dumps(results, indent=2, sort_keys=True, default=float))
