import os

import pytest
import torch

# One thread per process: two threads thrash on the 2-core CI machine for the small
# problems the tests use.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture
def figures(monkeypatch):
    """Every figure the CLI saves, by file name, to check that its axes hold data."""
    from probmix.cli import output

    saved = {}
    original = output.save_figure

    def keep(fig, out, name):
        saved[name] = fig
        original(fig, out, name)

    monkeypatch.setattr(output, "save_figure", keep)
    return saved
