"""mlpfast's one threading policy: Numba owns the threads, BLAS runs single-threaded.

Why: numba's ``np.dot`` calls scipy's OpenBLAS, which has its own thread pool.
OpenMP threads and OpenBLAS threads spin-wait against each other: a GEMM + prange
ReLU layer took 8,463 us with omp + 2 BLAS threads against 148 us with omp + 1
BLAS thread on 2 cores (NUMBA_NOTES.md).  So while an mlpfast kernel runs, every
BLAS library in the process is capped at one thread and the parallelism comes
from splitting minibatch rows (training) or samples (inference) across Numba's
threads, each calling single-threaded BLAS on its block.  The caps are restored
when the call returns, so the user's own numpy/scipy code keeps its threads.
(Small networks' unrolled kernels call no BLAS: their fits set no caps, which
cost ~10 us a call in threadpoolctl.)

``n_threads`` (Network, estimators) sets how many Numba threads a call uses;
``numba.set_num_threads`` is set and restored around each call.  An estimator's
stochastic fit holds one such context around its whole epoch loop (not one per
epoch), so BLAS stays capped during the bookkeeping between epochs too.

Fork safety: GNU OpenMP aborts a child process forked after the parent used it
("fork() called from a process already using GNU OpenMP").  In such a child
mlpfast runs every kernel on its serial path (no parallel region is entered), so
``multiprocessing`` with the fork start method works, single-threaded per child,
with a one-time ``RuntimeWarning``.  For parallel children use the ``spawn`` or
``forkserver`` start method, or joblib's default ``loky`` backend.

CPU affinity: under GNU OpenMP, each Python thread's team of Numba threads is
created at its first parallel region, on the CPUs that thread may run on then.
If its affinity was narrowed after numba was imported (``OMP_PROC_BIND=true``
with another OpenMP library imported first, as scikit-learn's libgomp binds the
main thread when it loads; ``os.sched_setaffinity``; a job launcher), the whole
team shares those CPUs and a threaded fit waits at every hand-over for a thread
that is not running: a 2-thread [20,100,1] fit took 536 ms instead of 35 ms on
one CPU (Zen 4, 5 epochs of 30k rows; 54 ms single-threaded).  So until a
thread's team exists, its calls use at most as many threads as it has CPUs when
that is fewer than when numba was imported, with a one-time ``RuntimeWarning`` (see
:func:`_thread_cpus`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import numba

_forked_from_omp = False
_warned_fork = False
# Per Python thread: ``team_cpus``, the threads its team was created for (see
# ``_team_started``).
_affinity = threading.local()
_warned_confined = False
_blas_controller = None
# BLAS caps are process-wide: the first of several concurrent kernel calls (from
# different Python threads) sets them, the last one out restores them.
_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved: list[int] = []


def _after_fork_in_child():
    global _forked_from_omp
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False) and threading_layer() == "omp":
        _forked_from_omp = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def threading_layer() -> str:
    """Numba's threading layer ('omp', 'tbb', 'workqueue'), or 'not started'."""
    try:
        return numba.threading_layer()
    except ValueError:
        return "not started"


def max_threads() -> int:
    """The most threads a kernel may use (``NUMBA_NUM_THREADS``, read at import)."""
    return numba.config.NUMBA_NUM_THREADS


def check_n_threads(n_threads) -> int:
    if n_threads is None:
        return max_threads()
    if (
        isinstance(n_threads, bool)
        or not isinstance(n_threads, (int,))
        and not (hasattr(n_threads, "__index__"))
    ):
        raise TypeError(f"n_threads must be an int or None, got {type(n_threads).__name__}")
    n_threads = int(n_threads)
    if n_threads == -1:
        return max_threads()
    if not 1 <= n_threads <= max_threads():
        raise ValueError(
            f"n_threads must be between 1 and {max_threads()} (NUMBA_NUM_THREADS), or -1 "
            f"for all of them; got {n_threads}"
        )
    return n_threads


def usable_threads(n_threads: int) -> int:
    """``n_threads``, or 1 in a child forked after OpenMP started (see module doc)."""
    global _warned_fork
    if _forked_from_omp and n_threads > 1:
        if not _warned_fork:
            warnings.warn(
                "mlpfast is running in a process forked after OpenMP started; it uses one "
                "thread here (OpenMP cannot run in such a child). Use the 'spawn' or "
                "'forkserver' start method, or joblib's loky backend, for parallel children.",
                RuntimeWarning,
                stacklevel=caller_outside_mlpfast(),
            )
            _warned_fork = True
        return 1
    cpus = _thread_cpus()
    if n_threads > cpus:
        global _warned_confined
        if not _warned_confined:
            warnings.warn(
                f"mlpfast's threads can only run on {cpus} CPU(s) here: this thread's CPU "
                f"affinity was narrowed after numba was imported (OMP_PROC_BIND with "
                f"another OpenMP library imported first, os.sched_setaffinity, a job "
                f"launcher), so it uses {cpus} thread(s) instead of {n_threads}. Narrow "
                f"the affinity before importing mlpfast, or unset OMP_PROC_BIND.",
                RuntimeWarning,
                stacklevel=caller_outside_mlpfast(),
            )
            _warned_confined = True
        return cpus
    return n_threads


def _affinity_size() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on this platform
        return None


# CPUs the process could run on when numba was imported (numba's own count, from
# which it sizes NUMBA_NUM_THREADS unless told otherwise; numba may have been
# imported long before mlpfast).
_IMPORT_CPUS = numba.config.NUMBA_DEFAULT_NUM_THREADS


def _thread_cpus() -> int:
    """How many threads the calling Python thread's kernels may use: all of them,
    unless its CPU affinity is narrower now than at import (then that many), under
    GNU OpenMP, before the thread's team exists (:func:`_team_started`).  Other
    layers keep one pool for the whole process; a thread's team, once created,
    keeps the CPUs it was created on (GNU OpenMP may then bind the calling thread
    itself to one CPU under OMP_PROC_BIND: not a narrowing)."""
    team = getattr(_affinity, "team_cpus", None)
    if team is not None:
        return team
    now = _affinity_size()
    if now is None or now >= _IMPORT_CPUS:
        return max_threads()
    numba.get_num_threads()  # starts numba's pool, so its layer is known
    if threading_layer() != "omp":
        return max_threads()
    return max(1, now)


def _team_started(n_threads: int) -> None:
    """Called before a call with ``n_threads`` > 1 runs its kernels: GNU OpenMP
    creates this Python thread's team at its first parallel region, on the CPUs it
    may run on now, so from here on that is what it has."""
    if n_threads > 1 and getattr(_affinity, "team_cpus", None) is None:
        _affinity.team_cpus = _thread_cpus()


def caller_outside_mlpfast() -> int:
    """``stacklevel`` of the first frame outside the mlpfast package (for warnings)."""
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _controller():
    global _blas_controller
    if _blas_controller is None:
        # numba's BLAS is scipy's: load it before looking, or it is not capped.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController().select(user_api="blas")
    return _blas_controller


def _set_blas_threads(controller, n: int) -> None:
    # threadpoolctl lets only the first Python thread that set a limit on a
    # pthreads OpenBLAS change it afterwards (others are silently ignored), so a fit
    # in a worker thread would run multi-threaded BLAS beside Numba's threads
    # (10-200x slower, measured).  The lock and count here already coordinate
    # mlpfast's callers, so call the library's own setter.
    setter = getattr(controller, "_real_set_num_threads", None) or controller.set_num_threads
    setter(n)


def _cap_blas():
    global _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            controllers = _controller().lib_controllers
            _blas_saved = [c.num_threads for c in controllers]
            for c, n in zip(controllers, _blas_saved, strict=True):
                if n != 1:
                    _set_blas_threads(c, 1)
        _blas_users += 1


def _release_blas():
    global _blas_users
    with _blas_lock:
        _blas_users -= 1
        if _blas_users == 0:
            for c, n in zip(_controller().lib_controllers, _blas_saved, strict=True):
                if n != 1:
                    _set_blas_threads(c, n)


@contextlib.contextmanager
def kernel_threads(n_threads: int, cap_blas: bool = True, parallel: bool = True):
    """Run the enclosed kernels with ``n_threads`` Numba threads and 1-thread BLAS
    (``cap_blas=False``: kernels that call no BLAS leave it as it is; ``parallel``:
    whether they run a parallel region)."""
    if not parallel and not cap_blas:
        # Serial kernels without BLAS (the unrolled ones): no thread count matters.
        # (numba's get/set_num_threads each take its launch lock: ~3-6 us a fit.)
        yield
        return
    if parallel:
        _team_started(n_threads)  # (first: starting numba's pool may bind this thread)
    previous = numba.get_num_threads()  # thread-local in numba
    if cap_blas:
        _cap_blas()
    # (set only on a change: ~10 us a call, which an estimator pays once per epoch)
    if previous != n_threads:
        numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        if previous != n_threads:
            numba.set_num_threads(previous)
        if cap_blas:
            _release_blas()
