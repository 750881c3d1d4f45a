#!/usr/bin/env bash
# The example report in reports/grid_example: GRID clips (../shared/data/grid_videos), WAV2PIX 64 px + baselines.
set -euo pipefail
S=scratch/h6
rm -rf $S/grid $S/runs
w2p-eval prepare videos ../shared/data/grid_videos --out $S/grid --mapping reports/grid_example.mapping.csv --seed 0
w2p-eval train baselines/wav2pix_64.yaml --data $S/grid --out $S/runs/wav2pix_64 --epochs 40 --batch-size 16 \
  --checkpoint-every 10 --seed 0 --threads 2
w2p-eval train baselines/l1_regression.yaml --data $S/grid --out $S/runs/l1_regression --epochs 40 --batch-size 16 \
  --checkpoint-every 40 --seed 0 --threads 2
for b in speaker_retrieval random_real mean_face real_faces; do
  w2p-eval train baselines/$b.yaml --data $S/grid --out $S/runs/$b --seed 0
done
w2p-eval evaluate $S/runs/wav2pix_64 --data $S/grid --seed 0 \
  --baselines $S/runs/l1_regression --baselines $S/runs/speaker_retrieval --baselines $S/runs/random_real \
  --baselines $S/runs/mean_face --baselines $S/runs/real_faces
w2p-eval report $S/runs/wav2pix_64 $S/runs/l1_regression $S/runs/speaker_retrieval $S/runs/random_real \
  $S/runs/mean_face $S/runs/real_faces --data $S/grid --out reports/grid_example
