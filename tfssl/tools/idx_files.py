"""MNIST-style IDX files (gzipped or not): read into numpy, and write (for the Fashion-MNIST fetcher).

Layout: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
uint32, then the data in C order.
"""

import gzip
import os
import struct

import numpy as np

_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dtype: code for code, dtype in _TYPES.items()}


def _is_gzip(path):
  # By content, not by name: some mirrors serve gunzipped files that still end in .gz.
  with open(path, "rb") as f:
    return f.read(2) == b"\x1f\x8b"


def read_idx(path):
  """The array stored in `path`; ValueError with the file name if it is not an IDX file."""
  with (gzip.open if _is_gzip(path) else open)(path, "rb") as f:
    try:
      header = f.read(4)
      if len(header) != 4 or header[:2] != b"\0\0" or header[2] not in _TYPES:
        raise ValueError("bad magic number")
      dtype, ndim = _TYPES[header[2]], header[3]
      shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
      data = f.read()
    except (OSError, EOFError, struct.error, gzip.BadGzipFile) as e:
      raise ValueError(f"{path}: not a readable IDX file ({e})") from e
    except ValueError as e:
      raise ValueError(f"{path}: not an IDX file ({e})") from e
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(data) != expected:
    raise ValueError(f"{path}: IDX file holds {len(data)} data bytes, its header promises "
                     f"{expected}: the file is truncated, download it again")
  return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
  """Writes `array` as IDX (gzipped when `path` ends in .gz), under a temporary name first."""
  array = np.asarray(array)
  dtype = array.dtype.newbyteorder(">")
  code = _CODES.get(dtype)
  if code is None:
    raise ValueError(f"IDX cannot store dtype {array.dtype}: use uint8, int8, int16, int32, "
                     "float32 or float64")
  tmp = f"{path}.tmp"
  with (gzip.open if str(path).endswith(".gz") else open)(tmp, "wb") as f:
    f.write(bytes([0, 0, code, array.ndim]))
    f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
    f.write(np.ascontiguousarray(array, dtype=dtype).tobytes())
  os.replace(tmp, path)
