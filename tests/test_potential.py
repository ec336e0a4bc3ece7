"""The hand-written GaussianMixture potential equals Pyro's potential of the same program."""

import numpy as np
import pytest
import torch
from pyro.infer.mcmc.util import initialize_model

import probmix
from probmix.infer.mcmc.potential import gmm_potential, program_potential
from probmix.infer.standardize import Standardizer


@pytest.mark.parametrize("weights_prior", ["dirichlet", "dirichlet_process"])
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_equals_pyro_potential(covariance, weights_prior):
    x, _ = probmix.three_clusters(40, seed=1)
    x = torch.as_tensor(x)
    model = probmix.GaussianMixture(3, covariance=covariance, weights_prior=weights_prior)
    std = Standardizer(x)
    prior = model.resolve_prior(x).affine(std.center, std.scale)
    ours = gmm_potential(model, std.x, prior)
    program = model.program_for(x, shift=std.center, scale=std.scale)
    pyros = program_potential(program, std.x)
    start, _, _, _ = initialize_model(program, model_args=(std.x,), max_plate_nesting=1)
    assert sorted(start) == sorted(ours.sites)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        params = {n: (v + 0.5 * torch.randn(v.shape, generator=gen, dtype=v.dtype)).requires_grad_()
                  for n, v in start.items()}
        a, b = ours.fn(params), pyros.fn(params)
        assert float(a) == pytest.approx(float(b), rel=1e-12, abs=1e-9)
        ga = torch.autograd.grad(a, list(params.values()))
        gb = torch.autograd.grad(b, list(params.values()))
        for u, v in zip(ga, gb):
            np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-9, atol=1e-9)


def test_flat_prior_potential_is_the_negative_log_likelihood():
    x, _ = probmix.three_clusters(30, seed=2)
    x = torch.as_tensor(x)
    model = probmix.GaussianMixture(3, prior="flat")
    ours = gmm_potential(model, x, None)
    proper = probmix.GaussianMixture(3).program_for(x)  # same sites and shapes, proper prior
    start, _, _, _ = initialize_model(proper, model_args=(x,), max_plate_nesting=1)
    values = ours.constrain(start)
    pyros = program_potential(model.program_for(x), x, values=values)
    assert float(ours.fn(start)) == pytest.approx(float(pyros.fn(start)), rel=1e-12)


def test_transforms_round_trip():
    from probmix.model.transforms import precision_matrix
    from torch.distributions import biject_to

    t = biject_to(precision_matrix)
    v = torch.randn(5, 6, dtype=torch.float64)
    lam = t(v)
    assert torch.linalg.eigvalsh(lam).min() > 0
    torch.testing.assert_close(t.inv(lam), v)
    # log|J| against autograd's Jacobian w.r.t. the free (lower-triangle) entries
    rows, cols = torch.tril_indices(3, 3)
    jac = torch.autograd.functional.jacobian(lambda u: t(u)[rows, cols], v[0])
    assert float(torch.logdet(jac)) == pytest.approx(float(t.log_abs_det_jacobian(v[0], lam[0])))


def test_jit_traced_program_potential_equals_the_plain_one():
    from programs import two_locs

    x = torch.linspace(-4, 4, 50, dtype=torch.float64)[:, None]
    values = {"weights": torch.tensor([0.3, 0.7], dtype=torch.float64),
              "scale": torch.tensor(1.2, dtype=torch.float64),
              "locs": torch.tensor([-2.0, 2.0], dtype=torch.float64)}
    plain = program_potential(two_locs, x, values=values)
    traced = program_potential(two_locs, x, values=values, jit_compile=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        u = {n: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype)
             for n, v in plain.unconstrain(values).items()}
        assert float(traced.fn(u)) == pytest.approx(float(plain.fn(u)), rel=1e-12)
