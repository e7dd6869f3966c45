#!/usr/bin/env bash
# SwAV on CIFAR-10 (CIFAR ResNet-18, 2x32 + 4x16 crops, queue, batch 256).
# Extra flags (--workdir, --dataset_dir, --run_eval, ...) override the flagfile.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/../../.venv/bin/python" ]; then py="$here/../../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m tfssl.train_and_eval --flagfile="$here/../../flags/swav/cifar10.cfg" "$@"
