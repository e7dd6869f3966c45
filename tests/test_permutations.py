"""The jigsaw permutation set: the shipped file, its generator, and the file formats `load` reads."""

import itertools
import struct

import numpy as np
import pytest

from tfssl.tasks import permutations


@pytest.fixture(scope="module")
def shipped():
  return permutations.load()


def _min_hamming(perms):
  return min(int(np.sum(a != b)) for a, b in itertools.combinations(perms, 2))


def test_shipped_set_is_100_distinct_permutations_without_identity(shipped):
  assert shipped.shape == (100, 9) and shipped.dtype == np.int32
  assert all(sorted(row) == list(range(9)) for row in shipped.tolist())
  assert len({tuple(row) for row in shipped.tolist()}) == 100
  assert list(range(9)) not in shipped.tolist()
  # The original's first row, 8 7 6 9 5 4 3 2 1 (1-based), is the greedy start.
  assert shipped[0].tolist() == [7, 6, 5, 8, 4, 3, 2, 1, 0]


def test_shipped_set_min_hamming_is_six(shipped):
  assert _min_hamming(shipped) == 6


def test_shipped_file_is_what_generate_gives(shipped):
  np.testing.assert_array_equal(permutations.generate(100, seed=0), shipped)


def test_greedy_step_takes_a_farthest_candidate():
  perms = permutations.generate(4, seed=3)
  # After the start, each new permutation is at distance 9 from all chosen ones (derangements exist).
  for i in range(1, 4):
    assert all(np.sum(perms[i] != perms[j]) == 9 for j in range(i))


def test_seed_changes_tie_breaks_only():
  a, b = permutations.generate(20, seed=0), permutations.generate(20, seed=1)
  assert a[0].tolist() == b[0].tolist() and not np.array_equal(a, b)
  np.testing.assert_array_equal(permutations.generate(20, seed=1), b)


def test_hamming_matrix_by_hand():
  perms = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]])
  np.testing.assert_array_equal(permutations.hamming_matrix(perms), [[0, 2, 3], [2, 0, 2], [3, 2, 0]])


def test_npy_and_text_round_trip(tmp_path, shipped):
  permutations.save_npy(tmp_path / "p.npy", shipped)
  permutations.save_text(tmp_path / "p.txt", shipped)
  np.testing.assert_array_equal(permutations.load(str(tmp_path / "p.npy")), shipped)
  np.testing.assert_array_equal(permutations.load(str(tmp_path / "p.txt")), shipped)


def test_text_may_be_one_based_and_comma_separated(tmp_path):
  (tmp_path / "p.txt").write_text("2,1,3\n\n3,1,2\n")
  np.testing.assert_array_equal(permutations.load(str(tmp_path / "p.txt")), [[1, 0, 2], [2, 0, 1]])


def test_original_binary_format_by_hand(tmp_path):
  # Two little-endian int32 for the shape, then 1-based int32 entries, row-major.
  rows = [[8, 7, 6, 9, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
  raw = struct.pack("<2i", 2, 9) + struct.pack("<18i", *sum(rows, []))
  (tmp_path / "perm.bin").write_bytes(raw)
  loaded = permutations.load(str(tmp_path / "perm.bin"))
  np.testing.assert_array_equal(loaded, np.array(rows) - 1)
  assert len(raw) == 8 + 4 * 18


def test_original_binary_round_trip(tmp_path, shipped):
  path = tmp_path / "permutations_100_max.bin"
  permutations.save_original_binary(path, shipped)
  raw = path.read_bytes()
  assert len(raw) == 3608  # the size of the original's permutations_100_max.bin
  assert struct.unpack("<2i", raw[:8]) == (100, 9)
  assert struct.unpack("<9i", raw[8:44]) == tuple(int(x) + 1 for x in shipped[0])
  np.testing.assert_array_equal(permutations.load(str(path)), shipped)


def test_bad_files_name_the_file(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    permutations.load(str(tmp_path / "missing.npy"))
  (tmp_path / "dup.txt").write_text("0 1 2\n0 1 2\n")
  with pytest.raises(ValueError, match="dup.txt.*not distinct"):
    permutations.load(str(tmp_path / "dup.txt"))
  (tmp_path / "bad.txt").write_text("0 1 1\n")
  with pytest.raises(ValueError, match="bad.txt.*permutation of"):
    permutations.load(str(tmp_path / "bad.txt"))
  (tmp_path / "junk.txt").write_text("zero one\n")
  with pytest.raises(ValueError, match="junk.txt"):
    permutations.load(str(tmp_path / "junk.txt"))


def test_main_regenerates(tmp_path, shipped):
  out = tmp_path / "regen.npy"
  permutations.main(["--output", str(out)])
  np.testing.assert_array_equal(np.load(out), shipped)
