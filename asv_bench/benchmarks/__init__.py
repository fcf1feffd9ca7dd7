"""mlpfast's asv benchmark suite (see CONTRIBUTING.md, "Benchmarks").

asv forks one process per benchmark from a server that imported this package
(``"launch_method": "forkserver"`` in asv.conf.json).  Numba loads its typing and
lowering registries (and scipy's BLAS) lazily, on the first compile or cache load:
about 0.5 s that every forked process would pay again.  Compiling one trivial
function here pays it once, in the server.  Nothing of mlpfast compiles or runs
here, and no thread pool starts, so forking stays safe.
"""

import numba


@numba.njit(cache=False)
def _load_numba_registries(x):
    return x + 1


_load_numba_registries(1)
