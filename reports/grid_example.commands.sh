#!/usr/bin/env bash
# The example report in reports/grid_example: GRID clips (../shared/data/grid_videos), WAV2PIX 64 px, the field's
# generators voice2face (Wen et al. 2019) and SF2F trained to the same budget (40 epochs at batch 16, seed 0, one
# thread; voice2face's embedding pretraining and SF2F's fuser stage are their extra stages, as in their papers),
# l1_regression and the fitted baselines, scored on the frozen test list reports/grid_example.testlist.json, plus
# WAV2PIX's faces exported with `generate` and scored from the folder as an external model would be, every source
# under two identity judges (dlib_resnet and faceres: the report's "Judge agreement" section), and the paired
# comparisons between the three generators and WAV2PIX vs l1_regression. Speakers' genders/ages labelled by eye
# (reports/grid_example.identity_meta.csv) feed the attributes suite's gender accuracy, same-gender matching and the
# gender_oracle baseline.
set -euo pipefail
S=scratch/grid_ex
rm -rf $S/grid $S/runs $S/exported $S/results.sqlite $S/results-items $S/compare*.json
w2p-eval prepare videos ../shared/data/grid_videos --out $S/grid --mapping reports/grid_example.mapping.csv --seed 0 \
  --identity-meta reports/grid_example.identity_meta.csv
w2p-eval train baselines/wav2pix_64.yaml --data $S/grid --out $S/runs/wav2pix_64 --epochs 40 --batch-size 16 \
  --checkpoint-every 10 --seed 0 --threads 1
w2p-eval train baselines/voice2face.yaml --data $S/grid --out $S/runs/voice2face --epochs 40 --batch-size 16 \
  --checkpoint-every 40 --seed 0 --threads 1
w2p-eval train baselines/sf2f.yaml --data $S/grid --out $S/runs/sf2f --epochs 40 --batch-size 16 \
  --checkpoint-every 40 --seed 0 --threads 1
w2p-eval train baselines/l1_regression.yaml --data $S/grid --out $S/runs/l1_regression --epochs 40 --batch-size 16 \
  --checkpoint-every 40 --seed 0 --threads 1
for b in speaker_retrieval random_real gender_oracle mean_face real_faces; do
  w2p-eval train baselines/$b.yaml --data $S/grid --out $S/runs/$b --seed 0
done
# WAV2PIX's final faces as an image folder, one <pair_id>.png per test pair
w2p-eval generate --ckpt $S/runs/wav2pix_64/checkpoints/epoch_0040.pt --data $S/grid --out $S/exported
w2p-eval evaluate $S/runs/wav2pix_64 --data $S/grid --seed 0 --backbone dlib_resnet,faceres --testlist reports/grid_example.testlist.json \
  --store $S/results.sqlite \
  --metrics identity,landmarks,speaker,retrieval,distances,matching,attributes \
  --baselines $S/runs/voice2face --baselines $S/runs/sf2f \
  --baselines $S/runs/l1_regression --baselines $S/runs/speaker_retrieval --baselines $S/runs/random_real \
  --baselines $S/runs/gender_oracle --baselines $S/runs/mean_face --baselines $S/runs/real_faces \
  --images $S/exported/epoch_0040 --name wav2pix_64_exported
# paired comparisons from the stored item values (no generator or judge runs again)
for pair in "voice2face wav2pix_64" "sf2f wav2pix_64" "sf2f voice2face" "wav2pix_64 l1_regression"; do
  set -- $pair
  w2p-eval compare $S/runs/$1 $S/runs/$2 --data $S/grid --seed 0 \
    --testlist reports/grid_example.testlist.json --store $S/results.sqlite --out $S/compare_$1_vs_$2.json
done
w2p-eval report $S/runs/wav2pix_64 $S/runs/voice2face $S/runs/sf2f $S/runs/l1_regression $S/runs/speaker_retrieval \
  $S/runs/random_real $S/runs/gender_oracle $S/runs/mean_face $S/runs/real_faces --store $S/results.sqlite --data $S/grid \
  --compare $S/compare_voice2face_vs_wav2pix_64.json --compare $S/compare_sf2f_vs_wav2pix_64.json \
  --compare $S/compare_sf2f_vs_voice2face.json --compare $S/compare_wav2pix_64_vs_l1_regression.json \
  --out reports/grid_example
