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
import re
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


# A version directory not used for this long is removed (checked at most once a day).
STALE_AFTER_DAYS = 30
_DAY = 86400.0
_LAST_USED = "last-used"
_VERSION_DIR = re.compile(r"kernels-[0-9a-f]{16}")


def _version_name(stamp: str) -> str:
    return f"kernels-{stamp[:16]}"


def _choose_cache_dir(stamp: str) -> tuple[Path, Path] | tuple[None, None]:
    """(root, this version's directory in it) for the first candidate root where
    the version directory can be written (another user's version directory in a
    shared root may not be: then the next candidate)."""
    for candidate in _cache_candidates():
        directory = candidate / _version_name(stamp)
        if _writable(directory):
            return candidate, directory
    return None, None


def _kernel_cache_file(name: str) -> bool:
    """Whether a file name is one of Numba's cache files for mlpfast's kernel modules
    or generated unrolled modules (``train.train_epochs-912.py311.1.nbc``)."""
    if not name.endswith((".nbi", ".nbc")):
        return False
    module = name.split(".", 1)[0]
    return module.startswith("mlpfast_unrolled_") or (KERNEL_DIR / f"{module}.py").exists()


def _generated_modules_only(directory: Path) -> bool:
    """Whether everything in an ``unrolled/`` folder is what mlpfast wrote there."""
    for entry in directory.iterdir():
        if entry.name == "__pycache__" and entry.is_dir() and not entry.is_symlink():
            if not _generated_modules_only(entry):
                return False
        elif not entry.name.lstrip(".").startswith("mlpfast_unrolled_"):
            return False
    return True


def _older_than(path: Path, days: float, now: float) -> bool:
    return now - path.stat().st_mtime > days * _DAY


def prune_stale(root: Path, current: Path, now: float | None = None) -> list[Path]:
    """Mark ``current`` used today and remove what no version has used for
    ``STALE_AFTER_DAYS``: other versions' directories (named ``kernels-`` + 16 hex
    digits, by their ``last-used`` marker) and, from releases before version
    directories, Numba's cache files of mlpfast's kernel modules and the
    ``unrolled/`` folder of generated modules, by their modification time.
    Nothing else: the root may be ``mlpfast/_kernels/__pycache__`` (Python's own
    ``.pyc`` files) or a directory the user chose (``$MLPFAST_CACHE_DIR``);
    symbolic links are left alone.  (Numba does not touch a cache file it loads, so
    an older mlpfast still in use on a shared root recompiles once a month.)  At
    most once a day per version, otherwise one ``stat``.  Never raises (a cache
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
                if entry == current or entry.is_symlink():
                    continue
                if entry.is_dir():
                    if _VERSION_DIR.fullmatch(entry.name):
                        used = entry / _LAST_USED
                        stale = used.exists() and _older_than(used, STALE_AFTER_DAYS, now)
                    elif entry.name == "unrolled":
                        stale = _older_than(entry, STALE_AFTER_DAYS, now)
                        stale = stale and _generated_modules_only(entry)
                    else:
                        continue
                    if stale:
                        shutil.rmtree(entry)
                        removed.append(entry)
                elif _kernel_cache_file(entry.name) and _older_than(entry, STALE_AFTER_DAYS, now):
                    entry.unlink()
                    removed.append(entry)
            except OSError:  # removed by another process meanwhile, or not ours to remove
                continue
    except OSError:
        pass
    return removed


SOURCE_STAMP = _kernel_sources_hash()
# Each version of the kernel sources caches into its own directory under the root:
# versions sharing a root (two environments with one NUMBA_CACHE_DIR) never
# overwrite each other's index files, and a version's files go away with its
# directory once unused.
CACHE_ROOT, CACHE_DIR = _choose_cache_dir(SOURCE_STAMP)
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
