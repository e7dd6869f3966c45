#!/usr/bin/env bash
# SwAV on Fashion-MNIST (a narrow CIFAR ResNet-18; see the flagfile for its CPU time).
# Extra flags (--workdir, --dataset_dir, --run_eval, ...) override the flagfile.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/../../.venv/bin/python" ]; then py="$here/../../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m tfssl.train_and_eval --flagfile="$here/../../flags/swav/fashion_mnist.cfg" "$@"
