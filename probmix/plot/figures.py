"""Former home of every figure, kept so that existing imports work.

The figures now live in :mod:`probmix.plot.mixture`, :mod:`probmix.plot.posterior` and
:mod:`probmix.plot.meanshift`; import them from :mod:`probmix.plot`.
"""

from probmix.plot._common import _palette  # noqa: F401  (probmix.cli.app imports it from here)
from probmix.plot.meanshift import meanshift_animation, meanshift_paths
from probmix.plot.mixture import clusters, compare, guessed_vs_true, uncertainty
from probmix.plot.posterior import criterion, loss_curve, rank, trace

__all__ = ["clusters", "compare", "criterion", "guessed_vs_true", "loss_curve",
           "meanshift_animation", "meanshift_paths", "rank", "trace", "uncertainty"]
