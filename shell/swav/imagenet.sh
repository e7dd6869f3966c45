#!/usr/bin/env bash
# SwAV on ImageNet: the 800-epoch batch-4096 run (2x224 + 6x96 crops, LARS 4.8).
# Extra flags (--workdir, --dataset_dir, --run_eval, ...) override the flagfile.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/../../.venv/bin/python" ]; then py="$here/../../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m tfssl.train_and_eval --flagfile="$here/../../flags/swav/imagenet.cfg" "$@"
