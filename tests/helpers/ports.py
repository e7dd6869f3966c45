"""Free TCP ports on 127.0.0.1 for the multi-worker jobs (TF_CONFIG's cluster addresses).

Ports come from a range of this test process's own: below Linux's ephemeral range (32768-60999),
so the kernel hands none of them to another program's outgoing connection, and split by pytest-xdist
worker (PYTEST_XDIST_WORKER=gw<N>), so two test processes running side by side never pick the same
port. Within a process the ports handed out are not handed out again, and each is checked free by
binding it.
"""

import itertools
import os
import socket

BASE, PER_WORKER = 20000, 1000
_offsets = itertools.count()


def _worker_index():
  name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
  digits = "".join(c for c in name if c.isdigit())
  return int(digits) if digits else 0


def _is_free(port):
  with socket.socket() as s:
    try:
      s.bind(("127.0.0.1", port))
    except OSError:
      return False
  return True


def free_ports(count):
  start = BASE + PER_WORKER * _worker_index()
  ports = []
  while len(ports) < count:
    offset = next(_offsets)
    if offset >= PER_WORKER:
      raise RuntimeError("no free port left in %d-%d" % (start, start + PER_WORKER - 1))
    if _is_free(start + offset):
      ports.append(start + offset)
  return ports
