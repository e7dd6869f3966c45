"""What the benchmarks share: a JSON-lines log of measurements, the machine, and markdown tables.

Every measurement is appended to `<output>.jsonl` the moment it is taken, so a run that is killed
keeps what it measured, and a rerun with the same settings reuses those lines instead of measuring
again (--remeasure to take them anew).
"""

import datetime
import json
import os
import platform
import shlex
import sys


class Log:
  """Append-only JSON lines; `find(**key)` returns the newest line whose fields match `key`."""

  def __init__(self, path, reuse=True):
    self.path = path
    self.lines = []
    if reuse and os.path.exists(path):
      with open(path) as f:
        self.lines = [json.loads(line) for line in f if line.strip()]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

  def find(self, **key):
    for line in reversed(self.lines):
      if all(line.get(k) == v for k, v in key.items()):
        return line
    return None

  def add(self, record):
    record = dict(record, time=now())
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True, default=float) + "\n")
    self.lines.append(record)
    return record


def now():
  return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def cpu_model():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine():
  """{"cpu", "cores", "gpus", "tensorflow", "python"} of this process's machine."""
  import tensorflow as tf
  gpus = []
  for device in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(device)
    gpus.append(details.get("device_name", device.name))
  return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": gpus, "tensorflow": tf.__version__,
          "python": platform.python_version()}


def describe_machine(info):
  text = "%s, %d cores" % (info["cpu"], info["cores"])
  if info["gpus"]:
    text += "; GPU: " + ", ".join(info["gpus"])
  return text + "; TensorFlow %s, Python %s" % (info["tensorflow"], info["python"])


def command_line():
  return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def markdown_table(headers, rows):
  lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")
  return "\n".join(lines)


def percent(value):
  return "-" if value is None else "%.2f" % (100.0 * value)


def clock(seconds):
  if seconds is None:
    return "-"
  seconds = int(round(seconds))
  return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def write_text(path, text):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
