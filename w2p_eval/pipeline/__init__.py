"""Multi-step workflows built from the library: evaluate run folders into the store, the audio-length
ablation, and the offline demo (`w2p-eval evaluate | ablate-audio | demo`)."""
