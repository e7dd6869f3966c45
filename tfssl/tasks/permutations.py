"""The jigsaw permutation set: generation, loading and saving.

tfssl ships `tfssl/data/permutations_100_max_hamming.npy`, made by `generate(100, seed=0)`:
greedy maximal-minimal-Hamming selection in the manner of Noroozi & Favaro (2016). Starting from a
fixed permutation, it repeatedly adds the permutation of 9 whose minimum Hamming distance to the
chosen set is largest; among equal minima the larger mean distance wins, and any remaining tie goes
to the candidate that comes first in a fixed order drawn from `seed`.

The identity is NOT in the set, as in the original's `permutations_100_max.bin`: an unshuffled grid
would be the only class that looks like a natural image, a cue unrelated to the tiles' content.
The start is the original file's first row (8 7 6 9 5 4 3 2 1, 1-based).

The original set maximised the *average* distance (its minimum is 2); this one maximises the
minimum, which is 6 for the shipped set (see tests/test_permutations.py), so no two classes differ
by a swap of only two or three tiles.

Files `load` reads, all giving an int32 array [P, n] of 0-based permutations:
- `.npy`: the array, 0-based;
- the original's binary format: two little-endian int32 (P, n), then P*n int32 entries 1..n;
- text: one permutation per line, entries separated by spaces or commas, 0-based or 1-based.

Run `python -m tfssl.tasks.permutations [--n=100] [--seed=0] [--output=PATH]` to regenerate.
"""

import argparse
import itertools
import os

import numpy as np

NUM_TILES = 9
_START = (7, 6, 5, 8, 4, 3, 2, 1, 0)  # the original set's first row, 0-based
DEFAULT_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                            "permutations_100_max_hamming.npy")


def generate(n=100, seed=0):
  """The `n` greedy maximal-minimal-Hamming permutations of 9 (module docstring), int32 [n, 9]."""
  candidates = np.array(list(itertools.permutations(range(NUM_TILES))), dtype=np.int8)
  if not 1 <= n < len(candidates):
    raise ValueError("number of permutations must be in [1, %d), got %d" % (len(candidates), n))
  # A random rank per candidate is the last tie-break.
  tie_rank = np.random.RandomState(seed).permutation(len(candidates))
  identity = np.all(candidates == np.arange(NUM_TILES), axis=1)
  min_dist = np.full(len(candidates), NUM_TILES + 1, dtype=np.int32)
  sum_dist = np.zeros(len(candidates), dtype=np.int64)
  available = ~identity
  chosen = [int(np.flatnonzero(np.all(candidates == np.array(_START), axis=1))[0])]
  num = len(candidates)
  for _ in range(n - 1):
    last = candidates[chosen[-1]]
    dist = np.sum(candidates != last, axis=1, dtype=np.int32)
    min_dist = np.minimum(min_dist, dist)
    sum_dist += dist
    available[chosen[-1]] = False
    # One int64 key orders by min distance, then summed distance (< 10 * n), then lowest tie rank.
    key = (min_dist.astype(np.int64) * (10 * n) + sum_dist) * num + (num - 1 - tie_rank)
    chosen.append(int(np.argmax(np.where(available, key, -1))))
  return candidates[chosen].astype(np.int32)


def hamming_matrix(perms):
  """Pairwise Hamming distances [P, P] of an int array [P, n]."""
  perms = np.asarray(perms)
  return np.sum(perms[:, None, :] != perms[None, :, :], axis=-1)


def validate(perms, source="permutations"):
  """Checks shape and content; returns int32 [P, n] 0-based (1-based input is shifted)."""
  perms = np.asarray(perms)
  if perms.ndim != 2 or perms.shape[0] < 1 or perms.shape[1] < 2:
    raise ValueError("%s: expected a 2-D array [num_perms, num_tiles], got shape %s"
                     % (source, perms.shape))
  perms = perms.astype(np.int64)
  n = perms.shape[1]
  if perms.min() == 1 and perms.max() == n:
    perms = perms - 1
  expected = np.arange(n)
  if not np.all(np.sort(perms, axis=1) == expected):
    raise ValueError("%s: every row must be a permutation of 0..%d (or 1..%d)" % (source, n - 1, n))
  if len(np.unique(perms, axis=0)) != len(perms):
    raise ValueError("%s: the permutations are not distinct" % source)
  return perms.astype(np.int32)


def _read_original_binary(raw):
  """The original's format, or None when `raw` is not one (header and size must agree)."""
  if len(raw) < 8:
    return None
  rows, cols = np.frombuffer(raw[:8], dtype="<i4")
  if rows < 1 or cols < 2 or len(raw) != 8 + 4 * int(rows) * int(cols):
    return None
  return np.frombuffer(raw[8:], dtype="<i4").reshape(int(rows), int(cols))


def load(path=None):
  """Permutations from `path` (.npy, the original binary, or text); default: the shipped set."""
  path = path or DEFAULT_FILE
  if not os.path.exists(path):
    raise ValueError("permutations file %s does not exist; pass an existing --permutations_file" % path)
  with open(path, "rb") as f:
    raw = f.read()
  if raw.startswith(b"\x93NUMPY"):
    perms = np.load(path)
  else:
    perms = _read_original_binary(raw)
    if perms is None:
      try:
        rows = [line.replace(",", " ").split() for line in raw.decode("ascii").splitlines()]
        perms = np.array([[int(x) for x in row] for row in rows if row])
      except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("permutations file %s is neither .npy, the original binary format, nor "
                         "text with one permutation per line (%s)" % (path, e)) from None
  return validate(perms, source="permutations file %s" % path)


def save_npy(path, perms):
  np.save(path, validate(perms))


def save_text(path, perms):
  """One 0-based permutation per line, entries separated by spaces."""
  with open(path, "w") as f:
    for row in validate(perms):
      f.write(" ".join(str(int(x)) for x in row) + "\n")


def save_original_binary(path, perms):
  """The original's layout: int32 (P, n) header then 1-based int32 entries, little-endian."""
  perms = validate(perms)
  with open(path, "wb") as f:
    f.write(np.array(perms.shape, dtype="<i4").tobytes())
    f.write((perms + 1).astype("<i4").tobytes())


def main(argv=None):
  parser = argparse.ArgumentParser(description="Regenerate the jigsaw permutation set.")
  parser.add_argument("--n", type=int, default=100)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", default=DEFAULT_FILE)
  args = parser.parse_args(argv)
  perms = generate(args.n, args.seed)
  save_npy(args.output, perms)
  dist = hamming_matrix(perms)[np.triu_indices(len(perms), 1)]
  print("wrote %s: %d permutations, min Hamming %d, mean %.2f"
        % (args.output, len(perms), dist.min(), dist.mean()))


if __name__ == "__main__":
  main()
