"""Numba settings for every mlpfast kernel, kept in one place.

Kernels never call ``numba.njit`` directly: they use :func:`kernel` (serial) or
:func:`parallel_kernel` from this module, so the flag set, caching and the cache
location are decided here once.

Caching
-------
Numba keys a cached function on the SHA-256 of *its own* source file only, so an
edit to a helper in another kernel module would leave stale machine code behind
(``NUMBA_NOTES.md``).  mlpfast installs its own cache locator for files under
``mlpfast/_kernels``: the source stamp is a hash of *all* kernel modules, so any
kernel edit recompiles every kernel, and the directory is the first writable one of

1. ``$NUMBA_CACHE_DIR/mlpfast`` when the user set ``NUMBA_CACHE_DIR``;
2. ``mlpfast/_kernels/__pycache__`` (a normal, writable install);
3. ``$MLPFAST_CACHE_DIR`` or the user cache directory (``~/.cache/mlpfast``),
   for read-only installs;
4. a per-user directory under the system temp dir.

If none is writable, caching is switched off (kernels still work, they just
compile in every process) instead of failing at import time.

Inside that root, each version of the kernel sources has its own directory
(``kernels-<source stamp>``, ~14 MB with both dtypes' kernels, plus the unrolled
kernels of small networks).  Numba never removes a cache file, and every kernel
edit or upgrade would leave a full set behind (a developer's cache had grown to
241 MB): a version directory whose ``last-used`` marker is older than
``STALE_AFTER_DAYS`` is removed by :func:`prune_stale` at import.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numba
from numba.core import caching as _numba_caching
from numba.core import types
from numba.core.registry import CPUDispatcher

# ``fastmath`` without ``nnan``/``ninf``: same speed as ``fastmath=True`` on our
# loops, but ``np.isnan``/``np.isfinite`` still work (NUMBA_NOTES.md), which the
# divergence checks rely on.
FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}

KERNEL_DIR = Path(__file__).resolve().parent / "_kernels"


def _kernel_sources_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(KERNEL_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
        return True
    except OSError:
        return False


def _cache_candidates() -> list[Path]:
    candidates = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        candidates.append(Path(os.environ["NUMBA_CACHE_DIR"]) / "mlpfast")
    candidates.append(KERNEL_DIR / "__pycache__")
    if os.environ.get("MLPFAST_CACHE_DIR"):
        candidates.append(Path(os.environ["MLPFAST_CACHE_DIR"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates.append(Path(xdg) / "mlpfast")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"mlpfast-cache-{uid}")
    return candidates


def _choose_cache_dir() -> Path | None:
    for candidate in _cache_candidates():
        if _writable(candidate):
            return candidate
    return None


# A version directory not used for this long is removed (checked at most once a day).
STALE_AFTER_DAYS = 30
_DAY = 86400.0
_VERSION_PREFIX = "kernels-"
_LAST_USED = "last-used"


def _version_dir(root: Path | None, stamp: str) -> Path | None:
    """This version's directory under the cache root (None when it cannot be made)."""
    if root is None:
        return None
    directory = root / f"{_VERSION_PREFIX}{stamp[:16]}"
    return directory if _writable(directory) else None


def _is_stale(path: Path, now: float) -> bool:
    return now - path.stat().st_mtime > STALE_AFTER_DAYS * _DAY


def prune_stale(root: Path, current: Path, now: float | None = None) -> list[Path]:
    """Mark ``current`` used today and remove what no version has used for
    ``STALE_AFTER_DAYS``: other versions' directories (by their ``last-used``
    marker) and the flat ``*.nbi``/``*.nbc`` files and ``unrolled/`` folder of
    releases before version directories.  Touches nothing else under ``root`` (it
    may be ``mlpfast/_kernels/__pycache__``, beside Python's own ``.pyc`` files).
    At most once a day per version: otherwise one ``stat``.  Never raises (a cache
    that cannot be tidied still works).  Returns what it removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        marker = current / _LAST_USED
        if marker.exists() and now - marker.stat().st_mtime < _DAY:
            return removed
        marker.touch()
        os.utime(marker, (now, now))
        for entry in root.iterdir():
            try:
                if entry == current:
                    continue
                if entry.is_dir() and entry.name.startswith(_VERSION_PREFIX):
                    used = entry / _LAST_USED
                    if _is_stale(used if used.exists() else entry, now):
                        shutil.rmtree(entry, ignore_errors=True)
                        removed.append(entry)
                elif entry.is_dir() and entry.name == "unrolled":
                    if _is_stale(entry, now):
                        shutil.rmtree(entry, ignore_errors=True)
                        removed.append(entry)
                elif entry.suffix in (".nbi", ".nbc") and _is_stale(entry, now):
                    entry.unlink()
                    removed.append(entry)
            except OSError:  # removed by another process meanwhile, or not ours to remove
                continue
    except OSError:
        pass
    return removed


SOURCE_STAMP = _kernel_sources_hash()
CACHE_ROOT: Path | None = _choose_cache_dir()
# Each version of the kernel sources caches into its own directory: versions
# sharing a root (two environments with one NUMBA_CACHE_DIR) never overwrite each
# other's index files, and a version's files go away with its directory once unused.
CACHE_DIR: Path | None = _version_dir(CACHE_ROOT, SOURCE_STAMP)
CACHE = CACHE_DIR is not None
if CACHE:
    prune_stale(CACHE_ROOT, CACHE_DIR)
# Where the unrolled kernels of small networks are written (``_kernels/unrolled.py``):
# generated modules, cached like the kernels above.
UNROLLED_DIR: Path | None = (CACHE_DIR / "unrolled").resolve() if CACHE else None


class _KernelCacheLocator(
    getattr(_numba_caching, "CacheLocator", None) or _numba_caching._CacheLocator
):
    """Cache locator for mlpfast's kernel modules (see the module docstring)."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self):
        # The directory was checked for writability when it was chosen.
        os.makedirs(self.get_cache_path(), exist_ok=True)

    def get_cache_path(self):
        return str(CACHE_DIR)

    def get_source_stamp(self):
        return SOURCE_STAMP

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if CACHE_DIR is None:
            return None
        try:
            if Path(py_file).resolve().parent not in (KERNEL_DIR, UNROLLED_DIR):
                return None
        except OSError:
            return None
        return cls(py_func, py_file)


# numba >= 0.60 names it CacheImpl (earlier _CacheImpl); either way, ours goes first.
_cache_impl = getattr(_numba_caching, "CacheImpl", None) or _numba_caching._CacheImpl
if _KernelCacheLocator not in _cache_impl._locator_classes:
    _cache_impl._locator_classes.insert(0, _KernelCacheLocator)


class KernelDispatcher(CPUDispatcher):
    """A dispatcher that compiles one version per argument *type*, not per value.

    Numba types an integer constant at a call site as ``Literal[int](0)`` and
    compiles a separate version of the callee for it: ``f(x, 0)`` and ``f(x, i)``
    were two compilations, and across the call tree the training kernel was
    compiled 4x over (measured: 53 s cold for the first tutorial fit).  Calls from
    compiled code therefore see plain types; constants still fold after LLVM
    inlines the (small) callee.
    """

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)


def kernel(*args, **flags):
    """``numba.njit`` with mlpfast's flags: cached, GIL released, fastmath set."""
    options = {"nopython": True, "nogil": True, "fastmath": FASTMATH, "error_model": "numpy"}
    options.update(flags)
    cache = options.pop("cache", CACHE)

    def decorate(function):
        if numba.config.DISABLE_JIT:
            return function
        dispatcher = KernelDispatcher(py_func=function, locals={}, targetoptions=options)
        if cache:
            dispatcher.enable_caching()
        return dispatcher

    if args and callable(args[0]):
        return decorate(args[0])
    return decorate


def parallel_kernel(*args, **flags):
    """:func:`kernel` with ``parallel=True``: the only place ``prange`` may appear."""
    flags.setdefault("parallel", True)
    return kernel(*args, **flags)


# The drop-in trainer's numbers must match numpy's to 1e-9 relative after 150
# steps: it may reassociate sums (BLAS does too, so exact order is not numpy's
# either) but must not contract, approximate functions or use reciprocals.
EXACT_FASTMATH = {"reassoc", "nsz"}


def exact_kernel(*args, **flags):
    """:func:`kernel` for the drop-in trainer: only ``EXACT_FASTMATH``."""
    flags.setdefault("fastmath", EXACT_FASTMATH)
    return kernel(*args, **flags)


def describe_cache() -> str:
    if CACHE_DIR is None:
        return "disabled (no writable cache directory found)"
    return str(CACHE_DIR)


def python_info() -> str:
    return sys.version.split()[0]
