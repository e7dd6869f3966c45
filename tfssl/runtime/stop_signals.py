"""SIGTERM and Ctrl-C during training: finish the step, save, exit (README, "The console and exit codes").

A preemptible VM or a cluster scheduler sends SIGTERM and gives about 30 s before SIGKILL; a person
presses Ctrl-C. Either way the run should keep its work: the trainer asks `received` after every
execution of the training step, saves a checkpoint at the step reached and exits with the
signal's conventional code (128 + its number: 143 for SIGTERM, 130 for SIGINT), so a scheduler sees
a run that was stopped, not one that failed. A second Ctrl-C exits at once: the first one gives
SIGINT back to its default action.

Python runs a signal handler between bytecodes, so a signal that arrives inside a training step is
seen when the step returns to Python; that is the point where the trainer can save anyway.
"""

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_code(signum):
  """The shell's code of a process ended by `signum`."""
  return 128 + int(signum)


class StopSignals:
  """A context manager: while inside, SIGTERM and the first SIGINT are recorded, not fatal.

  Outside the main thread (where Python cannot install handlers) it records nothing and the
  signals keep their usual effect.
  """

  def __init__(self):
    self.received = None  # the first signal's number
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum
    if signum == signal.SIGINT:
      # The next Ctrl-C ends the process at once (the default action), save or not.
      signal.signal(signal.SIGINT, signal.SIG_DFL)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
    return False

  @property
  def name(self):
    return signal.Signals(self.received).name if self.received else None
