#!/usr/bin/env bash
# BYOL on CIFAR-10 with the TF2 seed's settings (CIFAR ResNet-18, batch 512, Adam 1e-3, 200 epochs).
# Extra flags (--workdir, --dataset_dir, --run_eval, ...) override the flagfile.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/../../.venv/bin/python" ]; then py="$here/../../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m tfssl.train_and_eval --flagfile="$here/../../flags/byol/cifar10.cfg" "$@"
