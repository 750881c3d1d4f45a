#!/bin/bash
# The comparison as a user runs it, at a small same budget: WAV2PIX, voice2face and SF2F trained for EPOCHS epochs
# (batch 16, seed 0) on a real subset of the WAV2PIX release (tests/helpers.py release_subset: 60 train + 30 test
# frames per identity, 2 identities), evaluated by the identity and distances suites (dlib_resnet judge), with paired
# compares SF2F - WAV2PIX and voice2face - WAV2PIX. Needs ../shared/data/wav2pix_release.
# Usage: benchmarks/field_comparison.sh [EPOCHS (default 3)]   (W=work folder, PY=python)
set -e
PY=${PY:-python}
W=${W:-/tmp/w2p-field-comparison}
E=${1:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$REPO W2P_CACHE=$W/cache
rm -rf $W; mkdir -p $W
$PY -c "
from pathlib import Path; from tests.helpers import release_subset
release_subset(Path('$REPO/../shared/data/wav2pix_release'), Path('$W/src'))"
$PY -m w2p_eval prepare wav2pix-release $W/src --out $W/data
for m in wav2pix_64 voice2face sf2f; do
  start=$(date +%s.%N)
  $PY -m w2p_eval train $REPO/baselines/$m.yaml --data $W/data --out $W/runs/$m --epochs $E --batch-size 16 --seed 0 \
     --set checkpoint_every=$E $( [ $m = voice2face ] && echo --set embed_epochs=$E ) \
     $( [ $m = sf2f ] && echo --set fuser_epochs=1 ) > /dev/null
  echo "train $m: $(echo "$(date +%s.%N) - $start" | bc) s" >&2
done
$PY -m w2p_eval evaluate $W/runs/wav2pix_64 $W/runs/voice2face $W/runs/sf2f --data $W/data --metrics identity,distances \
   --seed 0
$PY -m w2p_eval results --data $W/data
for m in sf2f voice2face; do
  $PY -m w2p_eval compare $W/runs/$m $W/runs/wav2pix_64 --data $W/data --suites identity --out $W/$m-vs-wav2pix.json
done
