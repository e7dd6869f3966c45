"""tfssl as a library (issue 34): the wheel and sdist build, the wheel carries the configs and fixed
requirements, and installed into a fresh virtual environment it works from a directory outside the
repository: `import tfssl`, `tfssl-train --list_configs`, `--version`, a SimCLR run named by
`--config=simclr/fashion_mnist`, and the README's Keras snippet as written.

The fresh environment reuses this one's TensorFlow and other requirements through a .pth line
(a second TensorFlow download is what the test must not cost); tfssl itself comes from the wheel.
"""

import email.parser
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

pytestmark = pytest.mark.slow

# What the wheel must require: fixed, the same on every machine (no TensorFlow but in the extras).
REQUIRES = {
    "tensorflow-datasets", "absl-py", "tensorboard", "numpy", "pillow", "matplotlib",
    'tensorflow-cpu>=2.21; extra == "cpu"', 'tensorflow[and-cuda]>=2.21; extra == "gpu"',
    'tensorflow>=2.21; extra == "tensorflow"', 'pytest; extra == "test"',
    'pytest-xdist; extra == "test"', 'build; extra == "test"'}
SKIP = {".git", ".venv", "data", "workdirs", "build", "dist", ".pytest_cache"}


@pytest.fixture(scope="module")
def installed(repo_root, tmp_path_factory):
  """(venv python, venv bin, the built files): the wheel built from a copy of the sources and
  installed into a new virtual environment."""
  root = tmp_path_factory.mktemp("packaging")
  source = root / "source"
  # The sources as a clone has them: not the top level's environment, data and outputs.
  shutil.copytree(repo_root, source, symlinks=True, ignore=lambda d, names: [
      n for n in names if n == "__pycache__" or n.endswith(".egg-info")
      or (os.path.samefile(d, repo_root) and n in SKIP)])
  dist = root / "dist"
  build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                          "--outdir", str(dist), str(source)], capture_output=True, text=True)
  assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
  venv = root / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = venv / "bin" / "python"
  site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
  # This environment's packages (TensorFlow and the rest) after the venv's own; the .pth files of
  # that folder (its editable tfssl) are not read from a folder a .pth line adds.
  with open(os.path.join(site, "reuse_requirements.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  wheel = next(dist.glob("tfssl-*.whl"))
  install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                            "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True)
  assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
  return python, venv / "bin", dist


def test_the_wheel_carries_the_configs_and_fixed_requirements(installed, repo_root):
  _, _, dist = installed
  assert len(list(dist.glob("tfssl-*.tar.gz"))) == 1
  wheel = zipfile.ZipFile(next(dist.glob("tfssl-*.whl")))
  shipped = {n for n in wheel.namelist() if n.startswith("tfssl/flags/") and n.endswith(".cfg")}
  in_repo = {"tfssl/flags/%s" % p.relative_to(repo_root / "tfssl" / "flags")
             for p in (repo_root / "tfssl" / "flags").glob("*/*.cfg")}
  assert shipped == in_repo and len(shipped) >= 20
  assert "tfssl/data/permutations_100_max_hamming.npy" in wheel.namelist()
  metadata = email.parser.Parser().parsestr(
      wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode())
  from tfssl import __version__
  assert metadata["Version"] == __version__
  # Whatever TensorFlow build the building machine had: the requirements are the file's.
  assert {r.replace(" ", "").replace("'", '"') for r in metadata.get_all("Requires-Dist")} == {
      r.replace(" ", "") for r in REQUIRES}
  assert set(metadata.get_all("Provides-Extra")) == {"cpu", "gpu", "tensorflow", "test"}
  assert "importlib" not in (repo_root / "setup.py").read_text()  # a shim, nothing computed


def _run(args, cwd, env=None, timeout=600):
  proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                        timeout=timeout, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {})))
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def test_the_installed_commands_work_outside_the_repository(installed, fashion_mnist_dir, tmp_path):
  python, bin_dir, _ = installed
  where = _run([python, "-c", "import tfssl; print(tfssl.__file__)"], cwd=tmp_path).stdout
  assert str(bin_dir.parent) in where  # the wheel's, not the clone's
  listing = _run([bin_dir / "tfssl-train", "--list_configs"], cwd=tmp_path).stdout
  assert re.search(r"^simclr/imagenet +SimCLR v2's ImageNet pretraining", listing, re.M)
  assert len(listing.splitlines()) >= 20
  from tfssl import __version__
  assert _run([bin_dir / "tfssl-train", "--version"], cwd=tmp_path).stdout.strip() == (
      "tfssl %s" % __version__)
  workdir = tmp_path / "simclr"
  _run([bin_dir / "tfssl-train", "--config=simclr/fashion_mnist", "--dataset_dir=%s" % fashion_mnist_dir,
        "--workdir=%s" % workdir, "--train_steps=3", "--batch_size=16", "--log_every_steps=1",
        "--nolineareval_while_pretraining", "--precision=fp32"], cwd=tmp_path)
  assert (workdir / "ckpt-3.index").exists()


MARKER = "<!-- keras-snippet:"


def readme_snippet(repo_root):
  text = (repo_root / "README.md").read_text()
  after = text[text.index(MARKER):]
  return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_readme_keras_snippet_runs_as_written(installed, repo_root, fashion_mnist_dir,
                                                  tmp_path):
  """From a folder of the user's that holds the data where the snippet says, with the wheel."""
  python, _, _ = installed
  code = readme_snippet(repo_root)
  assert "tfssl.build_task(config)" in code and ".fit(" in code and "encoder()" in code
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "fashion_mnist").symlink_to(fashion_mnist_dir)
  script = tmp_path / "snippet.py"
  script.write_text(code)
  proc = _run([python, script], cwd=tmp_path, timeout=1200)
  assert proc.stdout.strip().splitlines()[-1] == "(4, 128)"
  # The callbacks did their work: TensorBoard events of both epochs' logs, no backup left.
  workdir = tmp_path / "workdirs" / "keras_simclr"
  events = [f for _, _, files in os.walk(workdir / "logs") for f in files if "tfevents" in f]
  assert events
  assert not (workdir / "backup").exists()


def test_without_tensorflow_the_commands_name_the_extras(installed, tmp_path):
  """A wheel installed without its extras (no TensorFlow, nothing else either): one line, exit 2."""
  _, _, dist = installed
  bare = tmp_path / "bare"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
  subprocess.run([sys.executable, "-m", "pip", "--python", str(bare / "bin" / "python"), "install",
                  "-q", "--no-deps", "--no-index", str(next(dist.glob("tfssl-*.whl")))],
                 check=True, capture_output=True)
  proc = subprocess.run([str(bare / "bin" / "tfssl-train"), "--list_configs"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "tfssl: error: tfssl needs TensorFlow >= 2.21, and none is installed: pip install "
      "'tfssl[cpu]' (the CPU build), 'tfssl[gpu]' (CUDA) or 'tfssl[tensorflow]'"]
