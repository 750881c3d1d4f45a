"""Datasets: manifests, audio/image loading, preprocessing of videos and releases, splits, demo data."""
