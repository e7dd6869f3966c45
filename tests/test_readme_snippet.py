"""The README's Keras snippet, copied into a file and run as written (from the repository root,
where its relative paths point), in a fresh process."""

import os
import re
import shutil
import subprocess
import sys

import pytest

MARKER = "<!-- keras-snippet:"


def readme_snippet(repo_root):
  text = (repo_root / "README.md").read_text()
  after = text[text.index(MARKER):]
  match = re.search(r"```python\n(.*?)```", after, re.S)
  return match.group(1)


@pytest.mark.slow
def test_the_readme_keras_snippet_runs_as_written(repo_root, fashion_mnist_dir, tmp_path):
  code = readme_snippet(repo_root)
  assert "tfssl.build_task(config)" in code and ".fit(" in code and "encoder()" in code
  workdir = repo_root / "workdirs" / "keras_simclr"
  shutil.rmtree(workdir, ignore_errors=True)  # the snippet's own folder; a rerun starts afresh
  script = tmp_path / "snippet.py"
  script.write_text(code)
  proc = subprocess.run([sys.executable, str(script)], cwd=repo_root, capture_output=True,
                        text=True, timeout=1200, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "(4, 128)"
  # The callbacks did their work: TensorBoard events of both epochs' logs.
  events = [f for _, _, files in os.walk(workdir / "logs") for f in files if "tfevents" in f]
  assert events
  shutil.rmtree(workdir, ignore_errors=True)
