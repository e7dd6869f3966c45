"""The one way tests run tfssl's commands.

- `train_and_eval(args)`: `python -m tfssl.train_and_eval ARGS` in this process, through the same
  steps the command takes (a task's default flagfile, absl's parsing with the command's own flag
  parser, `main`), so a usage error is the same line and exit code without the 4-6 s of a new
  interpreter importing TensorFlow. For everything that is not about the process itself.
- `process(args, module=...)`: a real interpreter, for what only a process shows: the console
  filter of TensorFlow's C++ banner, kill -9 and signals, plugins loaded from $TFSSL_PLUGINS,
  several workers, a fresh process loading an export, the README's commands.
"""

import collections
import contextlib
import io
import logging
import os
import subprocess
import sys

Result = collections.namedtuple("Result", "returncode stderr stdout")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What the console shows when the banner filter fails (tfssl/runtime/console.py).
BANNER = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
          "cpu_feature_guard", "rebuild TensorFlow with the appropriate compiler flags")


def train_and_eval(args, env=None):
  """Runs the train_and_eval command line in this process; Result(returncode, stderr, stdout).

  `env`: environment variables set for the run only. An exception the command does not turn into
  a line and an exit code propagates to the test, as a traceback would end the real command."""
  from absl import flags
  from absl import logging as absl_logging
  import keras
  from tfssl import train_and_eval as command
  from tfssl.runtime.console import flags_parser

  err, out = io.StringIO(), io.StringIO()
  # The command's log lines (absl's logger) go to its stderr, as `run()` sets them up.
  handler = logging.StreamHandler(err)
  handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  absl_logger = logging.getLogger("absl")
  verbosity = absl_logging.get_verbosity()
  code = 0
  with _environment(env or {}), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
    absl_logger.addHandler(handler)
    try:
      flags.FLAGS.unparse_flags()  # every flag back to its default, as in a new process
      argv = command.with_default_flagfile(["tfssl.train_and_eval"] + list(args))
      parse = flags_parser("tfssl: error:",
                           "python -m tfssl.train_and_eval --helpfull lists every flag")
      rest = parse(argv)
      # After parsing: absl's --verbosity flag (reset above) sets the level when it is parsed.
      absl_logging.set_verbosity(absl_logging.INFO)
      command.main(rest)
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
      absl_logger.removeHandler(handler)
      absl_logging.set_verbosity(verbosity)
      flags.FLAGS.unparse_flags()
      # --precision sets Keras's process-wide policy; the next test starts from float32.
      keras.mixed_precision.set_global_policy("float32")
  return Result(code, err.getvalue(), out.getvalue())


@contextlib.contextmanager
def _environment(values):
  saved = {k: os.environ.get(k) for k in values}
  os.environ.update({k: str(v) for k, v in values.items()})
  try:
    yield
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def child_env(**values):
  """The environment of a child process: this one's, quiet, without a multi-worker TF_CONFIG."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  env.update({k: str(v) for k, v in values.items()})
  return env


def process(args, module="tfssl.train_and_eval", env=None, cwd=REPO, timeout=600, code=None):
  """Runs `python -m module ARGS` (or `python ARGS` when module is None, or `python -c CODE`
  with `code`) in a new interpreter; Result(returncode, stderr, stdout)."""
  if code is not None:
    command = [sys.executable, "-c", code] + list(args)
  elif module is None:
    command = [sys.executable] + list(args)
  else:
    command = [sys.executable, "-m", module] + list(args)
  done = subprocess.run(command, cwd=cwd, env=env if env is not None else child_env(),
                        capture_output=True, text=True, timeout=timeout)
  return Result(done.returncode, done.stderr, done.stdout)


def flags_of(values):
  """["--name=value", ...] of a dict of flag values."""
  return ["--%s=%s" % kv for kv in values.items()]


def error_lines(stderr, prefix="tfssl: error:"):
  return [line for line in stderr.splitlines() if line.startswith(prefix)]


def assert_one_line(result, code, *words, prefix="tfssl: error:"):
  """The run exited `code` with exactly one `prefix` line holding every word, and no traceback
  or TensorFlow banner; returns the line."""
  assert result.returncode == code, (result.returncode, result.stderr[-3000:])
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = error_lines(result.stderr, prefix)
  assert len(lines) == 1, result.stderr[-3000:]
  for word in words:
    assert word in lines[0], (word, lines[0])
  for banner in BANNER:
    assert banner not in result.stderr, result.stderr[:2000]
  return lines[0]


def build_tfrecords(args):
  """`python -m tfssl.tools.build_tfrecords ARGS` in this process, on a FlagValues of its own (its
  flags share names with train_and_eval's); returns the exit code. Its lines go to sys.stderr
  (read them with capsys)."""
  from absl import flags
  from tfssl.tools import build_tfrecords as tool
  fv = tool.define_flags(flags.FlagValues())
  fv(["build_tfrecords"] + list(args))
  try:
    tool.execute(fv)
  except SystemExit as e:
    return e.code
  return 0
