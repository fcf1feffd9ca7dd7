"""Reproducible shuffles: the permutation of epoch ``e`` depends only on
``(seed, e)``, through a counter-based hash (splitmix64).

So a fit that is stopped and resumed (or saved and reloaded) visits the data in
the same order as one that never stopped, with no generator state to carry, and
the order does not depend on the number of threads.
"""

import numpy as np

from .._config import kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@kernel
def splitmix64(x):
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@kernel
def epoch_permutation(perm, seed, epoch):
    """Fill ``perm`` with a uniformly shuffled arange (Fisher-Yates)."""
    n = perm.shape[0]
    for i in range(n):
        perm[i] = i
    key = splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(epoch))
    for i in range(n - 1, 0, -1):
        u = (splitmix64(key ^ np.uint64(i)) >> _S11) * _TO_UNIT
        j = int(u * (i + 1))
        perm[i], perm[j] = perm[j], perm[i]
