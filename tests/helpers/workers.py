"""A multi-worker job on this machine: `python -m tfssl.train_and_eval --strategy=multi_worker`
processes on 127.0.0.1, each with its TF_CONFIG and its log file (the `workers` fixture of
tests/conftest.py starts them and kills what is left after the test)."""

import json
import signal
import subprocess
import sys
import time

from helpers.cli import child_env
from helpers.ports import free_ports


class Workers:
  """`count` worker processes of one job, each running the command line `args`."""

  def __init__(self, tmp_path, name, args, count=2):
    cluster = {"worker": ["127.0.0.1:%d" % p for p in free_ports(count)]}
    self.logs = [tmp_path / ("%s-worker%d.log" % (name, i)) for i in range(count)]
    self.procs = []
    for i in range(count):
      env = child_env()
      env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
      with open(self.logs[i], "w") as log:
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "tfssl.train_and_eval", "--strategy=multi_worker"] + list(args),
            stdout=log, stderr=subprocess.STDOUT, env=env))

  def wait(self, timeout=600):
    """The exit codes; whatever is still running after `timeout` seconds is killed."""
    deadline = time.time() + timeout
    try:
      return [p.wait(timeout=max(1, deadline - time.time())) for p in self.procs]
    finally:
      self.kill()

  def kill(self):
    for p in self.procs:
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()

  def log(self, index):
    return self.logs[index].read_text() if self.logs[index].exists() else ""
