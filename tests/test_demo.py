"""`make demo`'s program end to end, shortened: it says how long it takes, trains with progress
lines, and prints the three rows (learned, random init, raw pixels) with both accuracies."""

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_prints_three_rows_of_accuracies(tmp_path, fashion_mnist_dir, repo_root):
  proc = subprocess.run(
      [sys.executable, "-m", "tfssl.tools.demo", "--dataset_dir=" + fashion_mnist_dir,
       "--workdir=" + str(tmp_path / "demo"), "--pretrain_steps=6", "--eval_train_examples=3000",
       # At width 1: the demo's program is tested, not its network's accuracy.
       "--set=filters_factor=1"],
      cwd=repo_root, capture_output=True, text=True, timeout=1500)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  out = proc.stdout
  assert re.search(r"about \d+(-\d+)? minutes on a 2-core CPU", out)
  assert "First step done" in proc.stderr  # the trainer's progress reaches the console
  assert "the first 3000 of the train split" in out
  rows = re.findall(r"^(.+?)\s+(\d+\.\d\d)%\s+(\d+\.\d\d)%\s+(as is|standardised)", out, re.M)
  names = [row[0].strip() for row in rows]
  assert len(rows) == 3 and names[0].startswith("simclr, 6 steps"), out
  assert names[1].startswith("the same network, random initialisation")
  assert names[2].startswith("raw pixels")
  linear, knn = float(rows[2][1]), float(rows[2][2])
  # raw pixels from 3,000 training images: about 80% linear and 73% kNN on the test set
  assert 74.0 < linear < 86.0 and 66.0 < knn < 80.0, out
  for _, lin, kn, _ in rows[:2]:
    assert 20.0 < float(lin) <= 100.0 and 20.0 < float(kn) <= 100.0  # above chance (10 classes)


@pytest.mark.parametrize("item, message", [
    ("lr", "--set=lr: write --set=flag=value"),
    ("no_such_flag=1", "--set: Unknown command line flag 'no_such_flag'"),
])
def test_a_bad_set_exits_2_with_one_line_before_training(item, message, tmp_path, fashion_mnist_dir,
                                                          repo_root):
  proc = subprocess.run(
      [sys.executable, "-m", "tfssl.tools.demo", "--dataset_dir=" + fashion_mnist_dir,
       "--workdir=" + str(tmp_path / "demo"), "--set=" + item],
      cwd=repo_root, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("tfssl demo: error:")]
  assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
  assert not (tmp_path / "demo").exists()
