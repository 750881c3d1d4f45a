#!/usr/bin/env bash
# The example report in reports/release_example: the authors' released WAV2PIX subset
# (../shared/data/wav2pix_release, 2 YouTubers), WAV2PIX 64 px and l1_regression for 30 epochs on 2 CPU cores + the
# fitted baselines, scored with every suite on the frozen test list reports/release_example.testlist.json, and the
# paired comparison WAV2PIX vs l1_regression; every source under two identity judges (dlib_resnet and faceres).
# Both speakers are male (reports/release_example.identity_meta.csv): gender_oracle equals mean_face here and
# same-gender matching is skipped with that reason.
set -euo pipefail
S=scratch
rm -rf $S/release $S/rel_runs $S/rel_results.sqlite $S/rel_compare.json
w2p-eval prepare wav2pix-release ../shared/data/wav2pix_release --out $S/release --seed 0 \
  --identity-meta reports/release_example.identity_meta.csv
w2p-eval train baselines/wav2pix_64.yaml --data $S/release --out $S/rel_runs/wav2pix_64 --epochs 30 \
  --checkpoint-every 10 --seed 0 --threads 2
w2p-eval train baselines/l1_regression.yaml --data $S/release --out $S/rel_runs/l1_regression --epochs 30 \
  --checkpoint-every 30 --seed 0 --threads 2
for b in speaker_retrieval random_real gender_oracle mean_face real_faces; do
  w2p-eval train baselines/$b.yaml --data $S/release --out $S/rel_runs/$b --seed 0
done
w2p-eval evaluate $S/rel_runs/wav2pix_64 --data $S/release --seed 0 --workers 2 --backbone dlib_resnet,faceres \
  --testlist reports/release_example.testlist.json --store $S/rel_results.sqlite \
  --metrics identity,landmarks,speaker,retrieval,distances,matching,attributes \
  --baselines $S/rel_runs/l1_regression --baselines $S/rel_runs/speaker_retrieval --baselines $S/rel_runs/random_real \
  --baselines $S/rel_runs/gender_oracle --baselines $S/rel_runs/mean_face --baselines $S/rel_runs/real_faces
w2p-eval compare $S/rel_runs/wav2pix_64 $S/rel_runs/l1_regression --data $S/release --seed 0 \
  --testlist reports/release_example.testlist.json --store $S/rel_results.sqlite --out $S/rel_compare.json
w2p-eval report $S/rel_runs/wav2pix_64 $S/rel_runs/l1_regression $S/rel_runs/speaker_retrieval $S/rel_runs/random_real \
  $S/rel_runs/gender_oracle $S/rel_runs/mean_face $S/rel_runs/real_faces --store $S/rel_results.sqlite --data $S/release \
  --compare $S/rel_compare.json --out reports/release_example \
  --title "WAV2PIX 64 px on the authors' released subset (30 CPU epochs) and baselines"
