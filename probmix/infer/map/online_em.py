"""Online (stochastic) EM: one pass over a stream of chunks (Cappé & Moulines, 2009).

Exact EM reads every row at every iteration. Online EM reads each chunk once:
the running per-row sufficient statistics move towards those of the new chunk,

    s̄ ← (1 − ρ_t) s̄ + ρ_t · s(chunk_t) / n_t,     ρ_t = (t + 2)^(−κ),  κ ∈ (0.5, 1],

and the parameters are the closed-form M-step of N · s̄ (N the number of rows
of the whole data when known, else the rows seen so far), so the prior keeps
its weight relative to the whole data. The same E-step and M-step functions as
exact EM (:mod:`probmix.infer.map.em_steps`) do the work.

The first ``init_size`` rows of the stream fix the standardisation, the
data-scaled default prior and the initial parameters (as exact EM would
initialise on them).
"""

from __future__ import annotations

import torch
from probmix._progress import progress_bar

from probmix._random import resolve_seed
from probmix._validation import check_float, check_int
from probmix.model.covariance import raise_if_degenerate
from probmix.infer.map import em_steps
from probmix.infer.map.em_data import feature_variances, ridge
from probmix.infer.map.em_init import init_params as _init_params
from probmix.model.gaussian_mixture import GaussianMixture
from probmix.results.result import Fit
from probmix.io.sources import as_source

__all__ = ["fit_online_em"]


def _first_rows(chunks, size: int):
    """The first ``size`` rows of an iterator of chunks, and the rest of the iterator."""
    head, got = [], 0
    for x in chunks:
        head.append(x)
        got += x.shape[0]
        if got >= size:
            break
    if not head:
        raise ValueError("the data source gave no rows; pass a source with at least one row.")
    return torch.cat(head), chunks


def fit_online_em(model: GaussianMixture, x, *, chunk_size: int = 4096, n_epochs: int = 1,
                  step_exponent: float = 0.6, n_total: int | None = None, init="kmeans",
                  init_size: int = 10_000, reg_covar: float = 1e-6, seed: int | None = 0,
                  device=None, dtype=None, progress: bool = False) -> Fit:
    """MAP estimate of a :class:`GaussianMixture` by online EM, one pass per epoch.

    Parameters
    ----------
    model : GaussianMixture
    x : array-like (N, D) or streaming source
        Anything :func:`probmix.io.sources.as_source` takes, including a one-shot iterator of
        (n_i, D) arrays (with ``n_epochs=1``).
    chunk_size : int
        Rows per stochastic update.
    n_epochs : int
        Passes over the data (a one-shot iterator allows one).
    step_exponent : float in (0.5, 1]
        κ of the step sizes ρ_t = (t + 2)^(−κ): smaller forgets the start faster.
    n_total : int, optional
        Rows of the whole data, when the source cannot tell (an iterator); it sets the
        weight of the data against the prior. Default: the source's length, else the rows
        seen so far.
    init, seed, reg_covar, device, dtype, progress
        As in :func:`probmix.infer.map.em.fit_em`.
    init_size : int
        The first rows used to standardise, scale the prior and initialise.

    Returns
    -------
    Fit
        ``engine="map"``, ``options["method"] == "online"``; ``converged`` is None (a
        single pass has no convergence criterion); ``n_iter`` counts the chunk updates and
        ``lower_bounds`` holds each chunk's mean log-likelihood (before its update: a
        held-out estimate of the fit's quality as the pass goes on).
    """
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model must be a probmix.GaussianMixture; got {type(model).__name__}.")
    n_epochs = check_int(n_epochs, "n_epochs", minimum=1)
    kappa = check_float(step_exponent, "step_exponent", minimum=0.5)
    if not 0.5 < kappa <= 1:
        raise ValueError(f"step_exponent must be in (0.5, 1] (the Robbins-Monro conditions); "
                         f"got {step_exponent!r}.")
    init_size = check_int(init_size, "init_size", minimum=model.n_components)
    reg_covar = check_float(reg_covar, "reg_covar", minimum=0.0)
    seed = resolve_seed(seed)
    source = as_source(x, chunk_size=chunk_size, device=device, dtype=dtype)
    family, k = model.family, model.n_components

    stream = source.chunks()
    head, stream = _first_rows(stream, init_size)
    if head.shape[0] < k:
        raise ValueError(f"the first {head.shape[0]} rows are fewer than n_components={k}; "
                         "pass more data or a larger init_size.")
    sample = em_steps.PreparedData(head, family)
    prior = model.resolve_prior(head)
    prior_s = None if prior is None else prior.affine(sample.shift, sample.scale)
    variances = feature_variances(torch.diag(torch.var(head, 0, correction=0)), sample.scale)
    reg_s = ridge(reg_covar, True, variances, sample.scale)
    weights, means, cov = _init_params(model, sample, init, n_init=1, seed=seed,
                                       prior_s=prior_s, reg_s=reg_s, warm_start=None)
    prec_chol, ok = em_steps.factorise(family, cov)
    raise_if_degenerate(ok, reg_covar)
    w = em_steps.natural_weights(family, weights, means, prec_chol)
    s_bar = em_steps.e_step(sample, w).s / sample.total_weight  # (1, K, F) per row
    known = n_total if n_total is not None else source.n_rows

    seen, t, history = 0, 0, []
    bar = progress_bar(desc="online EM", unit="chunk", enabled=progress)

    def chunks_of_all_epochs():
        yield head  # the first rows are data too
        yield from stream
        for _ in range(n_epochs - 1):
            yield from source.chunks()

    for chunk in chunks_of_all_epochs():
        data = em_steps.PreparedData(chunk, family, shift=sample.shift, scale=sample.scale,
                                     cache_bytes=0)
        w = em_steps.natural_weights(family, weights, means, prec_chol)
        stats = em_steps.e_step(data, w)
        history.append(float(stats.log_lik + data.log_jacobian()) / data.total_weight)
        t += 1
        seen += chunk.shape[0]
        rho = (t + 2.0) ** (-kappa)
        s_bar = (1 - rho) * s_bar + rho * stats.s / data.total_weight
        total = float(known) if known is not None else float(seen)
        new = em_steps.m_step(family, s_bar * total, prior=prior_s, reg_covar=reg_s)
        if bool(new[4].all()):  # keep the last factorisable parameters
            weights, means, cov, prec_chol = new[:4]
        bar.update(1)
        bar.set_postfix(loglik=f"{history[-1]:.5g}")
    bar.close()
    params = {"weights": weights[0].cpu().numpy(),
              "means": (means[0] * sample.scale + sample.shift).cpu().numpy(),
              "covariances": (cov[0] * sample.scale**2).cpu().numpy()}
    return Fit(
        engine="map", model=model, params=params, n_features=sample.d, converged=None,
        n_iter=t, lower_bounds=torch.tensor(history, dtype=torch.float64).numpy(),
        options=dict(method="online", chunk_size=source.chunk_size, n_epochs=n_epochs,
                     step_exponent=kappa, n_total=known if known is not None else seen,
                     init=init if isinstance(init, str) else "given", init_size=init_size,
                     reg_covar=reg_covar, seed=seed),
        device=str(sample.shift.device), dtype=str(sample.shift.dtype).replace("torch.", ""),
        center=sample.shift.cpu().numpy(), scale=sample.scale,
    )
