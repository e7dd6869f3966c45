"""Converts a SourceData to slim-style shards plus dataset_info.json, in parallel and resumably.

Shards are contiguous slices of each split's item list (slim's layout), so the same inputs always
give the same shards. Complete shards from an earlier (killed) run are kept; the rest are written
by `num_workers` processes, each writing whole shards. The manifest is written last, atomically,
and only once every shard is complete: its presence means the directory is whole.
"""

import glob
import multiprocessing
import os
import sys

import numpy as np

from tfssl.data import tfrecord
from tfssl.tools import image_sources, shard_writer
from tfssl.tools.progress_line import ProgressLine

MANIFEST = "dataset_info.json"
SPLITS = ("train", "validation")
# Part of every shard's fingerprint: bump it when the bytes a shard holds change for the same input.
FORMAT_VERSION = "1"

_counter = None  # the worker processes' shared progress counter


def _init_worker(counter):
  global _counter
  _counter = counter


def _count(n):
  with _counter.get_lock():
    _counter.value += n


def _write_in_worker(task):
  return shard_writer.write_shard(task, _count)


def plan_shards(source, output_dir, num_shards, strict):
  """All shard tasks of every split, in split then shard order."""
  tasks = []
  for split in SPLITS:
    items = source.splits.get(split)
    if not items:
      continue
    # More shards than items would leave empty files; slim never wrote those either.
    count = min(num_shards[split], len(items))
    bounds = np.linspace(0, len(items), count + 1).astype(int)
    for i in range(count):
      chunk = items[bounds[i]:bounds[i + 1]]
      extra = f"{FORMAT_VERSION}\0{tfrecord.LABEL_OFFSET}\0" + "\0".join(source.classes)
      tasks.append(shard_writer.ShardTask(output_dir, split, i, count, chunk, source.classes,
                                          strict, image_sources.fingerprint(chunk, extra)))
  return tasks


def _remove_leftovers(output_dir, tasks):
  """Temp files of killed runs, and shards an earlier plan (another shard count) wrote here."""
  for path in glob.glob(os.path.join(output_dir, ".*-of-*.tmp")):
    os.remove(path)
  wanted = {task.name for task in tasks}
  for marker in glob.glob(os.path.join(output_dir, shard_writer.STATE_DIR, "*-of-*.json")):
    name = os.path.basename(marker)[:-len(".json")]
    if name not in wanted:
      # Only shards our state records say we wrote; nothing else in the folder is touched.
      for path in (os.path.join(output_dir, name), marker):
        if os.path.exists(path):
          os.remove(path)


def _run(tasks, num_workers, log):
  progress = ProgressLine(sum(len(t.items) for t in tasks), "examples", log)
  markers = []
  if num_workers <= 1 or len(tasks) == 1:
    done = 0

    def count(n):
      nonlocal done
      done += n
      progress.update(done)

    for task in tasks:
      markers.append(shard_writer.write_shard(task, count))
  else:
    # spawn, not fork: a forked child of a process that has loaded TensorFlow can deadlock.
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    with ctx.Pool(min(num_workers, len(tasks)), _init_worker, (counter,)) as pool:
      results = pool.imap_unordered(_write_in_worker, tasks)
      while len(markers) < len(tasks):
        try:
          markers.append(results.next(timeout=0.5))
        except multiprocessing.TimeoutError:
          pass
        progress.update(counter.value)
      progress.done = counter.value
  progress.finish()
  return markers


def _manifest(source, tasks, markers):
  by_name = {m["file"]: m for m in markers}
  splits, skipped = {}, []
  for task in tasks:
    marker = by_name[task.name]
    split = splits.setdefault(task.split, {"num_examples": 0, "shards": []})
    split["shards"].append({"file": task.name, "num_examples": marker["num_examples"]})
    split["num_examples"] += marker["num_examples"]
    skipped.extend(marker["skipped"])
  return {"name": source.name, "classes": list(source.classes), "labeled": bool(source.labeled),
          "num_classes": len(source.classes), "label_offset": tfrecord.LABEL_OFFSET,
          "splits": splits, "num_skipped": len(skipped), "skipped": skipped}


def build(source, output_dir, train_shards, validation_shards, num_workers=1, strict=False,
          log=None):
  """Writes `source` into `output_dir`; returns the manifest. Raises StrictFailure under `strict`."""
  log = log or sys.stderr
  os.makedirs(os.path.join(output_dir, shard_writer.STATE_DIR), exist_ok=True)
  tasks = plan_shards(source, output_dir,
                      {"train": train_shards, "validation": validation_shards}, strict)
  _remove_leftovers(output_dir, tasks)
  markers, todo = [], []
  for task in tasks:
    marker = shard_writer.completed_marker(output_dir, task.name, task.fingerprint)
    if marker and strict and marker["skipped"]:
      # An earlier, lenient run skipped images in this shard: --strict must still refuse them.
      first = marker["skipped"][0]
      raise shard_writer.StrictFailure(first["file"], first["reason"])
    (markers.append(marker) if marker else todo.append(task))
  manifest_path = os.path.join(output_dir, MANIFEST)
  if todo:
    # The manifest vouches for a whole directory; it goes until the shards match again.
    if os.path.exists(manifest_path):
      os.remove(manifest_path)
    log.write(f"build_tfrecords: {len(tasks) - len(todo)} of {len(tasks)} shards already "
              f"complete, writing {len(todo)} to {output_dir}\n")
    markers += _run(todo, num_workers, log)
  manifest = _manifest(source, tasks, markers)
  shard_writer.write_json_atomic(manifest_path, manifest)
  _report(manifest, output_dir, log)
  return manifest


def _report(manifest, output_dir, log):
  counts = ", ".join(f"{split} {info['num_examples']} in {len(info['shards'])} shards"
                     for split, info in manifest["splits"].items())
  classes = f"{manifest['num_classes']} classes" if manifest["labeled"] else "no labels"
  log.write(f"build_tfrecords: {output_dir}: {counts}, {classes}\n")
  if manifest["skipped"]:
    log.write(f"build_tfrecords: skipped {manifest['num_skipped']} unreadable images "
              f"(listed in {MANIFEST}; --strict stops at the first instead):\n")
    for entry in manifest["skipped"]:
      log.write(f"  {entry['file']}: {entry['reason']}\n")
  log.flush()
