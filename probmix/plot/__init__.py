"""Figures of fitted mixtures: clusters with covariance ellipses, posterior spaghetti,
model comparison, loss curves, selection criteria, MCMC traces and mean-shift paths.

Every function builds its own :class:`matplotlib.figure.Figure` (never ``pyplot.show``,
no change to rcParams or to the pyplot figure registry) and returns it, so the module
works under the Agg backend, in notebooks and in scripts alike. Functions that draw on
one axes accept ``ax=`` and then draw there and return that axes' figure.

Modules: :mod:`~probmix.plot.mixture` (clusters, uncertainty, compare, guessed_vs_true),
:mod:`~probmix.plot.classification` (pairs, classification_uncertainty: any D),
:mod:`~probmix.plot.posterior` (loss_curve, criterion, trace, rank) and
:mod:`~probmix.plot.meanshift` (meanshift_paths, meanshift_animation); use them as
``from probmix import plot; plot.clusters(fit, x)``.
"""

from probmix.plot.classification import classification_uncertainty, pairs
from probmix.plot.meanshift import meanshift_animation, meanshift_paths
from probmix.plot.mixture import clusters, compare, guessed_vs_true, uncertainty
from probmix.plot.posterior import criterion, loss_curve, rank, trace

__all__ = ["classification_uncertainty", "clusters", "compare", "criterion", "guessed_vs_true",
           "loss_curve", "meanshift_animation", "meanshift_paths", "pairs", "rank", "trace",
           "uncertainty"]
