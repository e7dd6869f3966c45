#!/usr/bin/env bash
# Rotation, RevNet50 x4 on ImageNet, the original config.
# Extra flags (--workdir, --dataset_dir, --run_eval, --hub_module, ...) override the flagfile.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/../../.venv/bin/python" ]; then py="$here/../../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m tfssl.train_and_eval --flagfile="$here/../../flags/rotation/imagenet.cfg" "$@"
