"""check_program: valid programs pass with a report; each broken rule is named with its fix."""

import importlib.util
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import probmix
from probmix.model.program_check import ProgramError

MODELS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.py"))
X = torch.as_tensor(np.random.default_rng(0).normal(size=(12, 2)))


def _load(path):
    spec = importlib.util.spec_from_file_location(f"gallery_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_gallery_programs_pass(path):
    module = _load(path)
    x, _, _ = module.simulate(30, seed=0)
    report = probmix.check_program(module.program, x)
    assert report.n_rows == 30 and report.assignment == "z" and report.n_components >= 2
    assert "z" not in report.global_sites and "obs" not in report.global_sites


def _program(*, plate="data", size=None, enumerate_="parallel", obs_name="obs", event=True,
             index=lambda locs, z: locs[z], local_continuous=False):
    """A two-Gaussian program with one rule broken at a time."""
    def program(x):
        w = pyro.sample("weights", dist.Dirichlet(torch.ones(2, dtype=x.dtype)))
        with pyro.plate("components", 2):
            locs = pyro.sample("locs", dist.Normal(torch.zeros(x.shape[1], dtype=x.dtype),
                                                   3.0).to_event(1))
        with pyro.plate(plate, x.shape[0] if size is None else size):
            infer = {"enumerate": enumerate_} if enumerate_ else {}
            z = pyro.sample("z", dist.Categorical(w), infer=infer)
            if local_continuous:
                pyro.sample("u", dist.Normal(torch.zeros((), dtype=x.dtype), 1.0))
            d = dist.Normal(index(locs, z), 1.0)
            pyro.sample(obs_name, d.to_event(1) if event else d, obs=x)
    return program


def test_a_valid_program_reports_its_sites():
    report = probmix.check_program(_program(), X)
    assert report.global_sites == {"weights": (2,), "locs": (2, 2)}
    assert report.n_components == 2 and "valid mixture program" in str(report)


@pytest.mark.parametrize("kwargs, problem, fix", [
    (dict(plate="rows"), "no site is inside pyro.plate('data'", "pyro.plate('data', x.shape[0])"),
    (dict(size=5), "has size [5], but x has 12 rows", "pyro.plate('data', x.shape[0])"),
    (dict(enumerate_=None), "'z' is not marked for enumeration", "infer={'enumerate': 'parallel'}"),
    (dict(obs_name="y"), "no observed site named 'obs' (observed sites: 'y')", "Name the observation"),
    (dict(event=False), "Shape mismatch inside plate('data')", ".to_event(1)"),
    (dict(index=lambda locs, z: locs[z].reshape(-1, locs.shape[-1])), "fails when 'z' is enumerated",
     "locs[z]"),
    (dict(local_continuous=True), "continuous latent site 'u'", "Move it out of the plate"),
])
def test_each_broken_rule_is_named_with_its_fix(kwargs, problem, fix):
    with pytest.raises(ProgramError) as info:
        probmix.check_program(_program(**kwargs), X)
    message = str(info.value)
    assert problem in message and fix in message, message
    assert isinstance(info.value, ValueError) and info.value.problems


def test_no_assignment_site():
    def program(x):
        loc = pyro.sample("loc", dist.Normal(torch.zeros(2, dtype=x.dtype), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(loc, 1.0).to_event(1), obs=x)
    with pytest.raises(ProgramError, match="no discrete assignment site"):
        probmix.check_program(program, X)


def test_rows_outside_the_support_are_reported():
    def program(x):
        w = pyro.sample("weights", dist.Dirichlet(torch.ones(2, dtype=x.dtype)))
        with pyro.plate("components", 2):
            low = pyro.sample("low", dist.Normal(torch.zeros(2, dtype=x.dtype), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Categorical(w), infer={"enumerate": "parallel"})
            box = dist.Uniform(low[z], low[z] + 0.1, validate_args=False)  # misses most rows
            pyro.sample("obs", box.to_event(1), obs=x)
    with pytest.raises(ProgramError, match="not finite for"):
        probmix.check_program(program, X)


def test_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match="program must be a callable"):
        probmix.check_program("models/poisson.py", X)
