"""Offline, deterministic baselines: a classical lesion detector, a caption writer and text retrieval."""
