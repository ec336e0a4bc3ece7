"""Warning and error categories raised by probmix."""

__all__ = ["ConvergenceWarning", "DegenerateCovarianceError"]


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at its iteration limit before meeting its tolerance."""


class DegenerateCovarianceError(ValueError):
    """A covariance estimate is not positive definite (raise ``reg_covar``)."""
