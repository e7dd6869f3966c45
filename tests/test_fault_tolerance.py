"""What a run does when the data or the disk fails, through the command line on real Fashion-MNIST
(in this process, tests/helpers/cli.py; one real process for the exit code of a run error).

- A corrupt TFRecord shard stops the run with one `tfssl: error:` line naming the shard and a
  non-zero exit; --skip_corrupt_records keeps training and reports what it skipped. The damaged
  datasets are copies of the real one whose training split is one short shard of real records
  (so a few steps read all of it) with one record damaged: bytes flipped inside it (its checksum
  fails, and nothing after it in the shard can be framed), or an image that does not decode.
- A workdir that cannot be written stops with one clear line; when the disk fills up at a save, the
  newest complete checkpoint stays in place and a later run resumes from it.

Tests run as root, where chmod does not stop writes, so unwritable places are made with a file
where a directory is expected: a --workdir under a regular file, and a regular file at the path
where TensorFlow writes the next checkpoint's shards (`<prefix>_temp/`) for the full disk.
"""

import json
import os
import re

import pytest

from helpers import cli as helpers_cli
from helpers.cli import error_lines

pytestmark = pytest.mark.slow

RUN = dict(task="supervised", architecture="resnet18", filters_factor=1, dataset="fashion_mnist",
           batch_size=16, preprocessing="resize,-1_to_1", resize_size="32", lr=0.01,
           random_seed=3, log_every_steps=1, save_checkpoints_secs=3600)
DAMAGED = "train-00000-of-00002"  # the one training shard of the damaged copies
HELD_OUT = "train-00009-of-00010"  # the real last shard: the copies' `val` split
RECORDS, BAD = 40, 20  # the damaged shard's records, and the index of the damaged one


def cli(workdir, dataset_dir, *flags, process=False, **values):
  """The command line on RUN's settings: in this process, or in a real one with `process`."""
  run = dict(RUN, workdir=str(workdir), dataset_dir=str(dataset_dir), **values)
  args = helpers_cli.flags_of(run) + list(flags)
  return helpers_cli.process(args) if process else helpers_cli.train_and_eval(args)


def frame(data):
  """One TFRecord frame (length, its CRC, data, data CRC) with placeholder CRCs."""
  return len(data).to_bytes(8, "little") + b"\0" * 4 + data + b"\0" * 4


def damaged_copy(source, target, damage):
  """A copy of the Fashion-MNIST records whose training split is one shard of RECORDS real
  records with record BAD damaged: `read` flips bytes inside it (its checksum fails, and nothing
  after it in the shard can be framed), `decode` replaces its image with bytes that are no PNG.
  The manifest is the real one with the train shards replaced (`val` is the real last shard)."""
  import tensorflow as tf
  from tfssl.data import tfrecord
  os.makedirs(target)
  with open(os.path.join(source, "dataset_info.json")) as f:
    manifest = json.load(f)
  for name in os.listdir(source):
    if name.startswith("validation-") or name == HELD_OUT:
      os.symlink(os.path.join(source, name), os.path.join(target, name))
  original = tf.data.TFRecordDataset(os.path.join(source, "train-00000-of-00010"))
  records = [r.numpy() for r in original.take(RECORDS)]
  if damage == "decode":
    records[BAD] = tfrecord.make_example(b"not a png", "PNG", 1, "", 28, 28, 1, "bad.png") \
        .SerializeToString()
  path = os.path.join(target, DAMAGED)
  with tf.io.TFRecordWriter(path) as writer:
    for record in records:
      writer.write(record)
  if damage == "read":
    offset = sum(len(frame(r)) for r in records[:BAD]) + 12 + 20  # 20 bytes into its data
    with open(path, "r+b") as f:
      f.seek(offset)
      f.write(b"\xff" * 16)
  manifest["splits"]["train"] = {
      "num_examples": RECORDS + 6000,
      "shards": [{"file": DAMAGED, "num_examples": RECORDS},
                 {"file": HELD_OUT, "num_examples": 6000}]}
  with open(os.path.join(target, "dataset_info.json"), "w") as f:
    json.dump(manifest, f)
  return target


@pytest.fixture(scope="module", params=["read", "decode"])
def damaged(request, tmp_path_factory, fashion_mnist_dir):
  target = str(tmp_path_factory.mktemp("data") / request.param)
  return request.param, damaged_copy(fashion_mnist_dir, target, request.param)


def test_a_corrupt_shard_stops_the_run_with_one_line_naming_it(tmp_path, damaged):
  _, data_dir = damaged
  done = cli(tmp_path / "w", data_dir, train_steps=3)
  assert done.returncode != 0
  errors = error_lines(done.stderr)
  assert len(errors) == 1, done.stderr[-4000:]
  assert "Traceback" not in done.stderr, done.stderr[-4000:]
  assert os.path.join(data_dir, DAMAGED) in errors[0], errors
  assert "--skip_corrupt_records" in errors[0], errors
  # Nothing was trained, so nothing was saved (the workdir is claimed only once the task is built,
  # and building reads the first records: a shard corrupt there leaves no workdir at all).
  workdir = tmp_path / "w"
  assert not workdir.exists() or not [f for f in os.listdir(workdir) if f.startswith("ckpt-")]


def test_skip_corrupt_records_trains_on_and_reports_what_it_skipped(tmp_path, damaged, capfd):
  kind, data_dir = damaged
  # One pass over the shard is 2 steps' worth of examples, so 3 steps read every record.
  done = cli(tmp_path / "w", data_dir, "--skip_corrupt_records", train_steps=3)
  assert done.returncode == 0, done.stderr[-4000:]
  assert not error_lines(done.stderr)
  # The input pipeline's reports are tf.print's, on file descriptor 2 (the process's stderr).
  stderr = done.stderr + capfd.readouterr().err
  path = os.path.join(data_dir, DAMAGED)
  reports = [line for line in stderr.splitlines() if path in line]
  assert reports, stderr[-4000:]
  if kind == "read":
    # After a checksum failure the rest of the shard cannot be framed: the loss is told in bytes.
    size = os.path.getsize(path)
    for line in reports:
      match = re.search(r"read (\d+) of (\d+) bytes.*skipped", line)
      assert match and int(match.group(2)) == size and 0 < int(match.group(1)) < size, line
  else:
    # A record that frames but does not decode is counted (once per pass over the shard).
    counts = [re.search(r"skipped (\d+) corrupt record", line) for line in reports]
    assert all(counts) and all(int(c.group(1)) >= 1 for c in counts), reports
  assert os.path.exists(tmp_path / "w" / "ckpt-3.index")


def test_a_workdir_that_cannot_be_created_is_one_clear_line(tmp_path, fashion_mnist_dir):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  # A real process: the exit code and line of an error found while running.
  done = cli(blocker / "workdir", fashion_mnist_dir, process=True, train_steps=2)
  assert done.returncode == 1
  errors = error_lines(done.stderr)
  assert len(errors) == 1 and str(blocker / "workdir") in errors[0], done.stderr[-3000:]
  assert "Traceback" not in done.stderr
  assert blocker.read_text() == "not a directory"


def test_a_full_disk_at_a_save_keeps_the_newest_checkpoint_and_resumes(tmp_path,
                                                                      fashion_mnist_dir):
  workdir = tmp_path / "w"
  first = cli(workdir, fashion_mnist_dir, train_steps=2)
  assert first.returncode == 0, first.stderr[-3000:]
  before = {f: (workdir / f).read_bytes() for f in os.listdir(workdir) if f.startswith("ckpt-2")}
  assert "ckpt-2.index" in before

  # TensorFlow writes a checkpoint's shards under `<prefix>_temp/` and only then renames them into
  # place; a file there makes the save of step 4 fail like a full disk would.
  (workdir / "ckpt-4_temp").write_text("")
  failed = cli(workdir, fashion_mnist_dir, train_steps=4)
  assert failed.returncode == 1
  errors = error_lines(failed.stderr)
  assert len(errors) == 1, failed.stderr[-4000:]
  assert "Traceback" not in failed.stderr
  assert str(workdir) in errors[0] and "ckpt-2" in errors[0] and "intact" in errors[0], errors
  # The newest complete checkpoint is untouched and still the one the index names.
  assert {f: (workdir / f).read_bytes() for f in before} == before
  assert not (workdir / "ckpt-4.index").exists()
  assert "ckpt-2" in (workdir / "checkpoint").read_text()

  # Space is freed; the same command resumes from step 2 and finishes.
  os.remove(workdir / "ckpt-4_temp")
  again = cli(workdir, fashion_mnist_dir, train_steps=4)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from %s at step 2" % (workdir / "ckpt-2") in again.stderr
  assert (workdir / "ckpt-4.index").exists()
