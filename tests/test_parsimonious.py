"""The 14 constrained M-steps of probmix.model.parsimonious.

Oracle: direct numerical minimisation (L-BFGS over an unconstrained parameterisation of each
model: log-volumes, log-shapes summing to zero, orientations as matrix exponentials of
skew-symmetric matrices) of the same objective, from several starts. The closed forms must
equal its optimum and the iterated ones reach it.
"""

import pytest
import torch

from probmix.model.parsimonious import (MODELS, constrained_covariances,
                                        n_covariance_parameters, objective)

K, D = 3, 3


def _scatter(seed):
    g = torch.Generator().manual_seed(seed)
    rotation = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0]
    a = torch.randn(K, 20, D, generator=g, dtype=torch.float64) * torch.tensor(
        [1.0, 2.0, 0.5], dtype=torch.float64) @ rotation
    a = a * (0.5 + 3 * torch.rand(K, 1, 1, generator=g, dtype=torch.float64))
    return a.mT @ a, torch.tensor([20.0, 35.0, 50.0], dtype=torch.float64)


def _covariances(model, p):
    """Σ_k = λ_k R_k diag(a_k) R_kᵀ from the free parameters p of ``model``."""
    vol, shape, orient = model
    i = 0

    def take(n):
        nonlocal i
        i += n
        return p[i - n:i]

    lam = torch.exp(take(1 if vol == "E" else K)).expand(K)
    if shape == "I":
        a = torch.ones(K, D, dtype=p.dtype)
    else:
        raw = take(D - 1 if shape == "E" else K * (D - 1)).reshape(-1, D - 1)
        a = torch.exp(torch.cat([raw, -raw.sum(-1, keepdim=True)], -1)).expand(K, D)
    if orient == "I":
        rot = torch.eye(D, dtype=p.dtype).expand(K, D, D)
    else:
        n_rot = D * (D - 1) // 2
        raw = take(n_rot if orient == "E" else K * n_rot).reshape(-1, n_rot)
        skew = torch.zeros(raw.shape[0], D, D, dtype=p.dtype)
        iu = torch.triu_indices(D, D, 1)
        skew[:, iu[0], iu[1]] = raw
        rot = torch.matrix_exp(skew - skew.mT).expand(K, D, D)
    assert i == len(p)
    return (rot * (lam[:, None] * a)[:, None, :]) @ rot.mT


def _numerical_optimum(model, scatter, counts, starts=4):
    g = torch.Generator().manual_seed(1)
    best = float("inf")
    for _ in range(starts):
        p = (0.5 * torch.randn(n_covariance_parameters(model, K, D), generator=g,
                               dtype=torch.float64)).requires_grad_()
        opt = torch.optim.LBFGS([p], max_iter=400, tolerance_grad=1e-12,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            value = objective(_covariances(model, p), scatter, counts)
            value.backward()
            return value

        opt.step(closure)
        best = min(best, float(objective(_covariances(model, p.detach()), scatter, counts)))
    return best


@pytest.mark.parametrize("model", MODELS)
def test_each_model_reaches_the_numerical_optimum(model):
    scatter, counts = _scatter(0)
    cov = constrained_covariances(model, scatter, counts)
    value = float(objective(cov, scatter, counts))
    optimum = _numerical_optimum(model, scatter, counts)
    assert value <= optimum + 1e-6 * abs(optimum)  # the iterated ones stop at ~1e-7 of f
    assert torch.allclose(cov, cov.mT)


@pytest.mark.parametrize("model", MODELS)
def test_estimates_obey_the_model_constraints(model):
    scatter, counts = _scatter(3)
    cov = constrained_covariances(model, scatter, counts)  # (K, D, D)
    values, vectors = torch.linalg.eigh(cov)
    volume = torch.exp(torch.log(values).mean(-1))  # λ_k = |Σ_k|^(1/D)
    vol, shape, orient = model
    if vol == "E":
        assert torch.allclose(volume, volume[:1].expand(K), rtol=1e-9)
    if orient == "I":  # diagonal
        assert torch.allclose(cov, torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1)))
    if shape == "I":
        assert torch.allclose(values, values[..., :1].expand_as(values), rtol=1e-9)
    if shape == "E" and orient != "V":  # Σ_k / λ_k is the same matrix for every k
        normalised = cov / volume[:, None, None]
        assert torch.allclose(normalised, normalised[:1].expand_as(normalised), rtol=1e-7)
    if orient == "E" and shape == "V":  # one orientation: the Σ_k commute
        assert torch.allclose(cov[0] @ cov[1], cov[1] @ cov[0], atol=1e-6 * float(cov.abs().max()) ** 2)
    if shape == "E" and orient == "V":  # same eigenvalues up to volume
        shapes = values / volume[:, None]
        assert torch.allclose(shapes, shapes[:1].expand_as(shapes), rtol=1e-7)


def test_nested_models_are_never_better_than_the_models_containing_them():
    scatter, counts = _scatter(5)
    f = {m: float(objective(constrained_covariances(m, scatter, counts), scatter, counts))
         for m in MODELS}
    contains = {"VII": ["EII"], "VEI": ["EEI", "VII"], "VVI": ["VEI", "EVI"], "EEE": ["EEI"],
                "VEE": ["EEE", "VEI"], "EVE": ["EEE", "EVI"], "VVE": ["VEE", "EVE", "VVI"],
                "EEV": ["EEE"], "VEV": ["EEV", "VEE"], "EVV": ["EEV", "EVE"],
                "VVV": ["VEV", "EVV", "VVE"]}
    for big, smalls in contains.items():
        for small in smalls:
            assert f[big] <= f[small] + 1e-6 * abs(f[small]), (big, small)


def test_batched_restarts_equal_single_solves():
    pairs = [_scatter(s) for s in (0, 1)]
    scatter = torch.stack([p[0] for p in pairs])  # (2, K, D, D)
    counts = torch.stack([p[1] for p in pairs])  # (2, K)
    for model in MODELS:
        batched = constrained_covariances(model, scatter, counts)
        for b in range(2):
            single = constrained_covariances(model, scatter[b], counts[b])
            assert torch.allclose(batched[b], single, rtol=1e-6, atol=1e-9), model


def test_parameter_counts_follow_the_decomposition():
    # (K, D) = (3, 4): volume, shape, orientation counts
    expected = {"EII": 1, "VII": 3, "EEI": 4, "VEI": 6, "EVI": 10, "VVI": 12, "EEE": 10,
                "VEE": 12, "EVE": 16, "VVE": 18, "EEV": 22, "VEV": 24, "EVV": 28, "VVV": 30}
    assert {m: n_covariance_parameters(m, 3, 4) for m in MODELS} == expected


@pytest.mark.parametrize("model", ["EVE", "VVE"])
def test_warm_started_common_orientation_never_increases_f(model):
    """EM's M-step starts EVE/VVE at its current covariances (a few compiled sweeps): f must not
    increase from any start, so EM stays monotone; the dtype of the input comes back."""
    scatter, counts = _scatter(7)
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        rotation = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0]
        start = rotation @ torch.diag_embed(torch.rand(K, D, generator=g, dtype=torch.float64)
                                            + 0.5) @ rotation.mT  # one orientation
        # the start's f with its own best volumes and shapes is >= the warm step's f
        before = constrained_covariances(model, scatter, counts, start=start)
        after = constrained_covariances(model, scatter, counts, start=before)
        assert float(objective(after, scatter, counts)) <= \
            float(objective(before, scatter, counts)) + 1e-12
    low = constrained_covariances(model, scatter.float(), counts.float(), start=start.float())
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
