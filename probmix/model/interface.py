"""One interface for every mixture model: what results, diagnostics, exports and plots ask.

A :class:`~probmix.GaussianMixture` implements :class:`MixtureModel` itself; any other Pyro
mixture program (a callable, see "Declaring your own model") is wrapped by
:class:`ProgramModel`. :func:`as_model` gives the interface of either, so code downstream of
the engines (the :class:`~probmix.Fit`, relabelling, ArviZ, exports, figures) asks the model
instead of branching on its type.

Parameter values travel as dicts of site name to array. Methods that evaluate several
parameter sets at once take every value with a leading batch axis (B, ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from pyro import poutine

from probmix._random import quiet_singular_samples, seeded
from probmix._validation import check_int
from probmix.io.persistence import SavedProgram
from probmix.model import program as programs

__all__ = ["MixtureModel", "ProgramModel", "as_model"]


class MixtureModel(ABC):
    """The contract of a mixture model with K components.

    Subclasses implement :meth:`log_joint`, :meth:`component_axes`, :meth:`n_parameters`
    and :meth:`sample`; the other methods have defaults that suit any program.

    Attributes
    ----------
    gaussian : bool
        True when the components are Gaussians with the sites ``weights`` (K,), ``means``
        (K, D) and ``covariances`` (see :meth:`full_covariances`): what
        ``Fit.means``/``Fit.covariances`` and the cluster figures need.
    signature_site : str or None
        The one site whose values identify a component when relabelling draws (the means of
        a Gaussian mixture); None matches on every component-indexed site.
    """

    gaussian = False
    signature_site: str | None = None

    @abstractmethod
    def log_joint(self, params: dict, x: torch.Tensor, *, shift=None,
                  scale: float = 1.0) -> torch.Tensor:
        """log π_k + log p(x_n | θ_k) for B parameter sets, shape (B, N, K).

        Parameters
        ----------
        params : dict of str to array (B, ...)
            Values of the global sites (and recorded data constants), one leading batch axis.
        x : Tensor (N, D)
        shift : array (D,), optional
        scale : float
            Coordinates x' = (x - shift) / scale the model may compute in, for accuracy (the
            result is always the density of ``x``); models that need none ignore them.
        """

    @abstractmethod
    def component_axes(self, x: torch.Tensor | None = None,
                       sites=None) -> dict[str, int]:
        """The component axis (negative, counted on one value) of each site that has one.

        ``x`` is data the model can be traced on, ``sites`` the site names asked about
        (default: the model's global sites).
        """

    @abstractmethod
    def n_parameters(self, n_features: int, *, x: torch.Tensor | None = None) -> int:
        """Number of free parameters in ``n_features`` dimensions (``x``: data to trace on)."""

    @abstractmethod
    def sample(self, n: int, *, seed: int, params=None, n_features: int | None = None):
        """Draw (x (n, D), z (n,)) as numpy arrays, from ``params`` or the prior predictive."""

    # --- defaults -------------------------------------------------------------------------
    def site_dims(self, name: str, ndim: int, axes: dict) -> list[str]:
        """ArviZ dim names of one value of site ``name`` with ``ndim`` axes.

        The component axis (from ``axes``, see :meth:`component_axes`) is ``"component"``,
        the others ``"{name}_dim_{i}"``.
        """
        dims = [f"{name}_dim_{i}" for i in range(ndim)]
        if name in axes and ndim:
            dims[axes[name] % ndim] = "component"
        return dims

    def labels_exchangeable(self, x: torch.Tensor, values: dict, axes: dict) -> bool:
        """Whether permuting the components along ``axes`` leaves the density unchanged."""
        return True

    def complete_draws(self, draws: dict) -> dict:
        """Draws (chain, draw, ...) with the sites derived from the sampled ones added."""
        return draws

    def relabel_signatures(self, values: dict, axes: dict, batch_ndim: int) -> np.ndarray:
        """What identifies each component when relabelling, shape (*batch, K, P).

        Parameters
        ----------
        values : dict of str to array (*batch, ...)
            Site values (draws with batch (C, S), or one reference with no batch).
        axes : dict of str to int
            Component axis (negative) of each component-indexed site.
        batch_ndim : int
            Number of leading batch axes of every value.

        The default flattens every component-indexed site present in ``values``, in order.
        """
        parts = []
        for name in axes:
            if name in values:
                v = np.asarray(values[name], dtype=np.float64)
                v = np.moveaxis(v, axes[name] % v.ndim, batch_ndim)  # (*batch, K, ...)
                parts.append(v.reshape(*v.shape[:batch_ndim + 1], -1))
        return np.concatenate(parts, -1)

    def point_estimates(self, draws: dict) -> dict:
        """Point estimate of every site from its draws (chain, draw, ...): the posterior mean."""
        return {name: np.asarray(v).mean(axis=(0, 1)) for name, v in draws.items()}

    def standardisation(self, x: torch.Tensor):
        """(shift (D,) ndarray or None, scale) that :meth:`log_joint` computes in for ``x``."""
        return None, 1.0

    def data_constants(self, x: torch.Tensor) -> dict:
        """Values computed from the fitted data that predictions reuse (name -> ndarray)."""
        return {}

    def fit_options(self, sites: list[str], constants: dict) -> dict:
        """Options a Fit records so that :meth:`log_joint` can be fed its draws later."""
        return {}

    def full_covariances(self, covariances, n_components: int, n_features: int) -> np.ndarray:
        """Covariances (..., native shape) as full matrices (..., K, D, D); Gaussian models."""
        raise TypeError(
            "weights/means/covariances exist for a probmix.GaussianMixture; this fit is of a "
            "custom program: use fit.params."
        )


class ProgramModel(MixtureModel):
    """A Pyro mixture program behind the :class:`MixtureModel` interface.

    Parameters
    ----------
    program : callable
        ``program(x)`` with global sites, an enumerated assignment in ``pyro.plate("data",
        N)`` and an observed site ``"obs"``.
    """

    def __init__(self, program):
        if not callable(program):
            raise TypeError(f"model must be a probmix.GaussianMixture or a Pyro program (a "
                            f"callable); got {type(program).__name__}.")
        self.program = program

    def __repr__(self) -> str:
        return f"ProgramModel({self.program!r})"

    def log_joint(self, params, x, *, shift=None, scale=1.0):
        batch = next(iter(params.values())).shape[0] if params else 1
        return torch.stack([programs.enumerated_log_joint(
            self.program, {n: v[i] for n, v in params.items()}, x) for i in range(batch)])

    def component_axes(self, x=None, sites=None):
        """Found by tracing the program on ``x``; none for a program loaded without its code."""
        if isinstance(self.program, SavedProgram):
            return {}
        if x is None:
            raise ValueError("the component axes of a program are found by tracing it: pass x.")
        return programs.component_axes(self.program, x, programs.global_sites(self.program, x)
                              if sites is None else list(sites))

    def n_parameters(self, n_features, *, x=None):
        if x is None:
            raise ValueError("counting a program's parameters traces it: pass x (the fit keeps "
                             "it for SVI/MCMC; MAP fits record the count in their options).")
        return programs.count_parameters(self.program, x)

    def sample(self, n, *, seed, params=None, n_features=None):
        """Draw (x, z): the program run on n placeholder rows (zeros) with ``"obs"`` sampled.

        ``params`` fixes global sites (and data constants: quantities the program computes
        from its data see the zeros otherwise). ``n_features`` is D (default 1).
        """
        n = check_int(n, "n", minimum=1)
        template = torch.zeros(n, 1 if n_features is None else int(n_features),
                               dtype=torch.float64)
        program = poutine.uncondition(self.program)  # "obs" sampled, not observed
        if params:
            program = poutine.condition(program, data={
                k: torch.as_tensor(v, dtype=torch.float64) for k, v in params.items()})
        with seeded(seed), quiet_singular_samples():
            trace = poutine.trace(program).get_trace(template)
        x = trace.nodes["obs"]["value"].detach().cpu().numpy()
        z = next(site["value"] for name, site in trace.nodes.items()
                 if site["type"] == "sample" and site["infer"].get("enumerate") == "parallel")
        return x.reshape(n, -1), z.detach().cpu().numpy()

    def labels_exchangeable(self, x, values, axes):
        return programs.labels_exchangeable(self.program, x, values, axes)

    def data_constants(self, x):
        return {n: v.cpu().numpy() for n, v in programs.data_constants(self.program, x).items()}

    def fit_options(self, sites, constants):
        return {"sites": list(sites), "constants": list(constants)}


def as_model(model) -> MixtureModel:
    """The :class:`MixtureModel` interface of a GaussianMixture (itself) or a program."""
    if isinstance(model, MixtureModel):
        return model
    return ProgramModel(model)
