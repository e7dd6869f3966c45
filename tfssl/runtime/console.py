"""What the console of a tfssl command shows: tfssl's lines, not TensorFlow's C++ start-up banner.

TensorFlow 2.21 writes its start-up lines through absl's C++ logging before absl::InitializeLog()
has run, and those ignore TF_CPP_MIN_LOG_LEVEL (measured: levels 2 and 3, GLOG_minloglevel,
ABSL_MIN_LOG_LEVEL, ABSL_STDERRTHRESHOLD all leave them):

  WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
  I0000 00:00:1796126380.43 25426 port.cc:153] oneDNN custom operations are on. ...
  I0000 00:00:1796126380.49 25426 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...
  To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow ...

(the oneDNN line comes whenever TF_ENABLE_ONEDNN_OPTS=1 is set, which tfssl sets for speed). So
`python -m tfssl.<command>` (tfssl/__init__.py) and the console scripts' `run()` call
`quiet_tensorflow_banner()` before TensorFlow is imported or first runs an op: file
descriptor 2 becomes a pipe, and a thread copies it to the real stderr line by line, in order,
dropping exactly those lines. Everything else (tfssl's messages, warnings, errors, tracebacks, the
output of child processes) passes. TFSSL_TF_BANNER=1 leaves stderr alone.
"""

import atexit
import logging
import os
import re
import sys
import threading

SHOW_BANNER_ENV = "TFSSL_TF_BANNER"
_BANNER = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard)\.cc:\d+\] .*"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler "
    rb"flags\.)\r?$")

_installed = None


class _Filter:
  """fd 2 -> pipe -> this thread -> the original stderr, without the banner lines."""

  def __init__(self):
    self.original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    self.read_end = read_end
    self.thread = threading.Thread(target=self._copy, name="tfssl-stderr", daemon=True)
    self.thread.start()

  def _copy(self):
    pending = b""
    while True:
      try:
        chunk = os.read(self.read_end, 65536)
      except OSError:
        break
      if not chunk:
        break
      pending += chunk
      *lines, pending = pending.split(b"\n")
      kept = [line + b"\n" for line in lines if not _BANNER.match(line)]
      if kept:
        self._write(b"".join(kept))
    if pending and not _BANNER.match(pending):
      self._write(pending)
    os.close(self.read_end)

  def _write(self, data):
    while data:
      written = os.write(self.original, data)
      data = data[written:]

  def close(self):
    """Puts the original stderr back and lets the thread copy what is left in the pipe."""
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    for handler in logging.getLogger().handlers:
      try:
        handler.flush()
      except (OSError, ValueError):
        pass
    os.dup2(self.original, 2)  # closes the pipe's last write end in this process
    # A child process that still holds the pipe keeps it open; do not wait for it long.
    self.thread.join(timeout=2.0)


def quiet_tensorflow_banner(environ=None):
  """Filters TensorFlow's C++ start-up banner out of this process's stderr (module docstring);
  a no-op with TFSSL_TF_BANNER=1 or when stderr has no file descriptor. Returns whether it did."""
  global _installed
  environ = os.environ if environ is None else environ
  if _installed is not None or environ.get(SHOW_BANNER_ENV) == "1":
    return _installed is not None
  try:
    sys.stderr.flush()
    _installed = _Filter()
  except OSError:
    return False
  atexit.register(_installed.close)
  return True


class _ShortFormatter(logging.Formatter):
  """`12:03:04 message` for INFO, `12:03:04 WARNING: message` above it: a line a person reads."""

  def format(self, record):
    text = super().format(record)
    if record.levelno > logging.INFO:
      stamp, _, message = text.partition(" ")
      return "%s %s: %s" % (stamp, record.levelname, message)
    return text


def use_short_log_lines():
  """absl's log lines without their `I1201 11:46:47.356666 140489519254400 trainer.py:158]`
  prefix, for tfssl's commands (a library user's logging is left alone)."""
  from absl import logging as absl_logging
  absl_logging.get_absl_handler().setFormatter(_ShortFormatter("%(asctime)s %(message)s", "%H:%M:%S"))


_OP_NOISE = (re.compile(r"\{\{function_node [^}]*\}\}\s*"), re.compile(r"\s*\[Op:\w+\].*$"))


def op_error_text(message):
  """The readable part of a TensorFlow op error's first line: without the `{{function_node
  __wrapped__...}}` prefix and the `[Op:IteratorGetNext] name:` suffix."""
  text = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
  for pattern in _OP_NOISE:
    text = pattern.sub("", text)
  return text.strip().rstrip("'").strip()


_RAISED = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_line(message):
  """One line for an error message: its first, except for errors raised while a function was
  traced, whose text begins `in user code:` and a traceback (AutoGraph's form): there, the last
  `SomeError: what` line and what follows it up to Keras's `Arguments received` (Keras puts
  the layer's name on that line and the reason on the next), which name what failed."""
  text = _ANSI.sub("", (message or "")).strip()
  if not text:
    return ""
  lines = text.splitlines()
  if not lines[0].startswith("in user code:"):
    return lines[0]
  last = max((i for i, line in enumerate(lines) if _RAISED.match(line)), default=None)
  if last is None:
    return lines[0]
  kind, what = _RAISED.match(lines[last]).groups()
  parts = [what.strip()]
  for line in lines[last + 1:]:
    if line.strip().startswith("Arguments received"):
      break
    if line.strip():
      parts.append(line.strip())
  return "%s: %s" % (kind, " ".join(parts))


def flags_parser(prefix, hint):
  """A `flags_parser` for absl's app.run: a flag absl cannot parse ends with one `prefix` line and
  exit code 2, as the commands' other usage errors (absl's own exits 1 after a FATAL line)."""
  def parse(argv):
    from absl import flags
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      sys.stderr.write("%s %s (%s)\n" % (prefix, e, hint))
      sys.exit(2)
  return parse
