"""Figures of fits and baselines (matplotlib): ``from probmix import plot``."""

from probmix.plot.figures import (clusters, compare, criterion, guessed_vs_true, loss_curve, meanshift_animation, meanshift_paths, rank, trace, uncertainty)

__all__ = ["clusters", "compare", "criterion", "guessed_vs_true", "loss_curve", "meanshift_animation", "meanshift_paths", "rank", "trace", "uncertainty"]
