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
