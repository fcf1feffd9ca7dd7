import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def circles(n=1000, seed=0):
    from sklearn.datasets import make_circles

    return make_circles(n_samples=n, factor=0.5, noise=0.1, random_state=seed)
