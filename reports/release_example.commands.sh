#!/usr/bin/env bash
# The example report in reports/release_example: the authors' released WAV2PIX subset
# (../shared/data/wav2pix_release, 2 YouTubers), WAV2PIX 64 px, the field's generators voice2face (Wen et al. 2019)
# and SF2F trained to the same budget (30 epochs at batch 64 = 960 updates, seed 0, one torch thread each;
# voice2face's 20 embedding-pretraining epochs and SF2F's 10 fuser epochs are their extra stages, as in their
# papers), l1_regression (same budget) and the fitted baselines, scored with every suite on the frozen test list
# reports/release_example.testlist.json under two identity judges (dlib_resnet and faceres), with the paired
# comparisons between the three generators and WAV2PIX vs l1_regression.
# Both speakers are male (reports/release_example.identity_meta.csv): gender_oracle equals mean_face here and
# same-gender matching is skipped with that reason.
# The four trainings are independent: on a 2-core machine, run two at a time (one thread each).
set -euo pipefail
S=scratch
rm -rf $S/release $S/rel_runs $S/rel_results.sqlite $S/rel_results-items $S/rel_compare*.json
w2p-eval prepare wav2pix-release ../shared/data/wav2pix_release --out $S/release --seed 0 \
  --identity-meta reports/release_example.identity_meta.csv
for m in wav2pix_64 voice2face sf2f l1_regression; do
  w2p-eval train baselines/$m.yaml --data $S/release --out $S/rel_runs/$m --epochs 30 --batch-size 64 \
    --checkpoint-every 10 --seed 0 --threads 1
done
for b in speaker_retrieval random_real gender_oracle mean_face real_faces; do
  w2p-eval train baselines/$b.yaml --data $S/release --out $S/rel_runs/$b --seed 0
done
w2p-eval evaluate $S/rel_runs/wav2pix_64 --data $S/release --seed 0 --workers 2 --backbone dlib_resnet,faceres \
  --testlist reports/release_example.testlist.json --store $S/rel_results.sqlite \
  --metrics identity,landmarks,speaker,retrieval,distances,matching,attributes \
  --baselines $S/rel_runs/voice2face --baselines $S/rel_runs/sf2f \
  --baselines $S/rel_runs/l1_regression --baselines $S/rel_runs/speaker_retrieval --baselines $S/rel_runs/random_real \
  --baselines $S/rel_runs/gender_oracle --baselines $S/rel_runs/mean_face --baselines $S/rel_runs/real_faces
# paired comparisons from the stored item values (no generator or judge runs again)
for pair in "voice2face wav2pix_64" "sf2f wav2pix_64" "sf2f voice2face" "wav2pix_64 l1_regression"; do
  set -- $pair
  w2p-eval compare $S/rel_runs/$1 $S/rel_runs/$2 --data $S/release --seed 0 \
    --testlist reports/release_example.testlist.json --store $S/rel_results.sqlite --out $S/rel_compare_$1_vs_$2.json
done
w2p-eval report $S/rel_runs/wav2pix_64 $S/rel_runs/voice2face $S/rel_runs/sf2f $S/rel_runs/l1_regression \
  $S/rel_runs/speaker_retrieval $S/rel_runs/random_real $S/rel_runs/gender_oracle $S/rel_runs/mean_face \
  $S/rel_runs/real_faces --store $S/rel_results.sqlite --data $S/release \
  --compare $S/rel_compare_voice2face_vs_wav2pix_64.json --compare $S/rel_compare_sf2f_vs_wav2pix_64.json \
  --compare $S/rel_compare_sf2f_vs_voice2face.json --compare $S/rel_compare_wav2pix_64_vs_l1_regression.json \
  --out reports/release_example \
  --title "WAV2PIX, voice2face and SF2F 64 px on the authors' released subset (30 CPU epochs each) and baselines"
