"""The atomic operations the threaded training kernels coordinate with."""

import numpy as np
from numba import njit, prange

from mlpfast._kernels.atomics import (
    atomic_add,
    atomic_load,
    compare_and_swap,
    spin_pause,
    yield_cpu,
)


@njit
def _single(counters):
    old = atomic_add(counters, 1, 5)  # 3 -> 8
    swapped = compare_and_swap(counters, 1, 8, 9)  # 8 -> 9
    refused = compare_and_swap(counters, 1, 8, 7)  # not 8 any more: unchanged
    spin_pause()
    yield_cpu()
    return old, swapped, refused, atomic_load(counters, 1)


def test_each_operation_does_what_it_says():
    counters = np.array([0, 3, 0], dtype=np.int64)
    assert _single(counters) == (3, True, False, 9)
    np.testing.assert_array_equal(counters, [0, 9, 0])  # neighbours untouched


@njit(parallel=True)
def _claim_all(slots, owners, workers):
    # Every worker tries to claim every slot (0 -> 1); each slot must go to exactly
    # one of them, and a counter bumped by all of them must lose no increment.
    for _ in prange(workers):
        for i in range(slots.shape[0] - 1):
            if compare_and_swap(slots, i, 0, 1):
                owners[i] += 1
            atomic_add(slots, slots.shape[0] - 1, 1)


def test_concurrent_claims_are_exclusive_and_no_increment_is_lost():
    slots = np.zeros(20_001, dtype=np.int64)
    owners = np.zeros(20_000, dtype=np.int64)
    _claim_all(slots, owners, 4)
    assert (owners == 1).all()
    assert slots[-1] == 4 * 20_000
