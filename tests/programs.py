"""Small custom Pyro mixture programs shared by the tests (imported as ``programs``)."""

import pyro
import pyro.distributions as dist
import torch


def two_locs(x):
    """A custom program: two 1-D Gaussian components with a shared scale."""
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2, dtype=x.dtype)))
    scale = pyro.sample("scale", dist.LogNormal(torch.zeros((), dtype=x.dtype), 1.0))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(torch.zeros((), dtype=x.dtype), 10.0))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(locs[z], scale), obs=x[:, 0])
