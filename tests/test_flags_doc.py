"""The flags reference is generated from the code and kept current, and the entry point's
--helpfull lists every flag of the Config."""

import re
import subprocess
import sys

from tfssl import config as config_lib
from tfssl.tools import flags_doc


def test_docs_flags_md_is_current(repo_root):
  on_disk = (repo_root / "docs" / "FLAGS.md").read_text()
  assert on_disk == flags_doc.render(), (
      "docs/FLAGS.md is out of date: run `python -m tfssl.tools.flags_doc > docs/FLAGS.md`")


def test_reference_lists_every_flag_once_with_its_default():
  text = flags_doc.render()
  rows = re.findall(r"^\| `--([a-z0-9_]+)` \| (\w+) \| `([^`]*)` \|", text, flags=re.M)
  assert sorted(name for name, _, _ in rows) == sorted(s.name for s in config_lib.ALL_FLAGS)
  by_name = {name: (kind, default) for name, kind, default in rows}
  assert by_name["save_checkpoints_secs"] == ("integer", "None -> 600")
  assert by_name["strategy"] == ("string", "auto")
  assert by_name["use_tpu"] == ("bool", "false")


def test_original_and_port_flags_are_grouped_apart():
  text = flags_doc.render()
  original, port = text.split("## Flags tfssl adds")
  assert "`--splits_per_side`" in original and "`--splits_per_side`" not in port
  assert "`--cpu_replicas`" in port and "`--cpu_replicas`" not in original
  # The port's sub-headings come from config.py's comments.
  assert "### Contrastive methods" in port
  headings = [h for h, _ in flags_doc.port_groups()]
  assert len(headings) == len(set(headings)) >= 3


def test_helpfull_lists_every_flag(repo_root):
  out = subprocess.run([sys.executable, "-m", "tfssl.train_and_eval", "--helpfull"], cwd=repo_root,
                       capture_output=True, text=True, timeout=300)
  text = out.stdout + out.stderr
  missing = [s.name for s in config_lib.ALL_FLAGS
             if not re.search(r"--(\[no\])?%s\b" % re.escape(s.name), text)]
  assert not missing, "--helpfull lacks: %s" % ", ".join(missing)
