#!/usr/bin/env bash
# SimCLR's semi-supervised fine-tuning on 1% of ImageNet; pass --hub_module=<export>.
# Extra flags (--workdir, --dataset_dir, --run_eval, --hub_module, ...) override the flagfile.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/../../.venv/bin/python" ]; then py="$here/../../.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m tfssl.train_and_eval --flagfile="$here/../../flags/finetune/imagenet.cfg" "$@"
