#!/usr/bin/env bash
# Time the main command and one pretraining step rate per capacity size on the current device.
set -u
dev=${1:-cuda}
( time python3 -m unlearnbench.cli run --method safemax --attack relearn --device "$dev" --out /tmp/main --quiet ) 2>&1 | tail -16
for spec in "16,32,32 1" "32,64,64 1" "64,128,128 1" "128,256,256 1" "128,256,256,256 2"; do
  set -- $spec
  python3 -m unlearnbench.cli pretrain --what unet --out /tmp/probe-$1 --channels "$1" --layers-per-block "$2" \
    --steps 300 --device "$dev" --quiet 2>&1 | tail -1
done
