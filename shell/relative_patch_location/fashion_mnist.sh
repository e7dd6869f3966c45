#!/usr/bin/env bash
# Relative patch location, CIFAR ResNet-18 (filters_factor 1, patch variant) on Fashion-MNIST (a few CPU minutes).
# Extra flags (--workdir, --dataset_dir, --run_eval, --hub_module, ...) override the flagfile.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/../../.venv/bin/python" ]; then py="$here/../../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m tfssl.train_and_eval --flagfile="$here/../../flags/relative_patch_location/fashion_mnist.cfg" "$@"
