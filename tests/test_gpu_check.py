"""`make gpu-check`'s script in its CPU smoke mode: every part runs (its own JPEG shards, the timed
runs on a repeated batch and on the pipeline, kill-and-resume) and the table is written."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_gpu_check_smoke_mode_runs_every_part(tmp_path, repo_root):
  output = tmp_path / "gpu_check"
  proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--smoke",
                         "--output=%s" % output], cwd=repo_root, capture_output=True, text=True,
                        timeout=1500)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  with open(str(output) + ".json") as f:
    report = json.load(f)
  assert [r["task"] for r in report["rows"]] == ["supervised", "simclr", "swav"]
  for row in report["rows"]:
    assert "error" not in row, row
    assert row["synthetic"]["images_per_sec"] > 0 and row["real"]["images_per_sec"] > 0
    assert row["synthetic"]["finite"] and row["real"]["finite"]
    if row["task"] != "supervised":  # the same pipeline with the views' colour in the step
      assert row["real_on_device"]["images_per_sec"] > 0 and row["real_on_device"]["finite"]
  resume = report["resume"]
  assert resume["ok"] and resume["all_finite"], resume
  # the second run starts from the checkpoint the killed one left, not from step 0
  assert resume["resumed_at"] == resume["killed_after_checkpoint"] > 0
  assert resume["losses_logged"] >= 1 and resume["end"] == resume["resumed_at"] + 6
  table = (tmp_path / "gpu_check.md").read_text()
  assert "| swav |" in table and "Kill and resume" in table and "passed" in table
