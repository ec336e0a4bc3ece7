"""Deterministic clustering baselines: KMeans (batch, mini-batch, streamed), MeanShift, and
their fused CPU kernels."""
