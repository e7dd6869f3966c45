"""A progress line on stderr: done/total, examples per second and the time left."""

import sys
import time


def _clock(seconds):
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLine:

  def __init__(self, total, what="examples", stream=None, every_s=10.0):
    self.total, self.what = total, what
    self.stream = stream or sys.stderr
    # A terminal gets one line rewritten in place; a log file gets a line every `every_s` seconds.
    self.tty = getattr(self.stream, "isatty", lambda: False)()
    self.every_s = 0.5 if self.tty else every_s
    self.start = self.last = time.monotonic()
    self.done = 0

  def text(self):
    elapsed = max(time.monotonic() - self.start, 1e-9)
    rate = self.done / elapsed
    eta = _clock((self.total - self.done) / rate) if rate > 0 else "?"
    return (f"{self.done}/{self.total} {self.what} ({100.0 * self.done / max(self.total, 1):.0f}%), "
            f"{rate:.0f} {self.what}/s, ETA {eta}")

  def update(self, done):
    self.done = done
    now = time.monotonic()
    if now - self.last >= self.every_s:
      self.last = now
      self._show()

  def finish(self):
    self._show()
    if self.tty:
      self.stream.write("\n")
    self.stream.flush()

  def _show(self):
    self.stream.write(("\r" if self.tty else "") + self.text() + ("" if self.tty else "\n"))
    self.stream.flush()
