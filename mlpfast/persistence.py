"""Saving and loading a :class:`~mlpfast.Network`: a versioned ``.npz``, no pickle inside.

What a file holds
-----------------
An uncompressed ``.npz`` (a zip of ``.npy`` members, readable with
``np.load(path, allow_pickle=False)``) with these members:

``meta``
    A 0-d unicode array holding JSON: the format name (``"mlpfast.network"``) and
    version, the mlpfast version that wrote it, the architecture (``layer_sizes``,
    ``activations``, ``loss``, ``dtype``, ``seed``, ``n_threads``), the optimizer
    (None or its name) and the shuffle seed.
``params``
    The flat parameter buffer (``Network.params``).
``state``
    The optimizer state, ``(rows, n_params)``: 0 rows for no optimizer or ``sgd``,
    1 for ``momentum``/``nesterov``, 2 for ``adam``.
``counters``
    The training position, int64 ``[epoch, optimizer step, samples seen]``.
``history``
    The mean loss of every epoch trained so far (float64).
``checksum``
    SHA-256, as hex, over the metadata and every array above (dtype, shape and
    bytes), so silent corruption of the parameters or the state is detected.

Together these let a fit resume exactly where it stopped: ``fit`` for 2 epochs,
save, load, ``fit`` for 3 more gives bitwise the parameters of a 5-epoch fit
(same seeds, same thread count).  Not saved: the gradient buffer of the last
:meth:`Network.gradients` call, so :meth:`Network.update` needs a fresh
``gradients`` call after loading.

File names
----------
As with ``np.savez``, :func:`save` appends ``.npz`` to a path that does not end
with it (``save(net, "model")`` writes ``model.npz``) and returns the path written.
:func:`load` reads the path as given; when that does not exist and does not end
with ``.npz``, it reads ``path + ".npz"``, so ``load("model")`` finds what
``save(net, "model")`` wrote.

Atomic writes
-------------
:func:`save` writes to a temporary file in the destination's directory, flushes
and ``fsync``\\ s it, then renames it over the destination (``os.replace``) and
syncs the directory.  A crash or an exception mid-save leaves the previous file
untouched and removes the temporary file (a hard kill can leave a hidden
``.NAME.*.tmp`` behind, never a damaged ``NAME``).

Damaged files
-------------
Whatever is wrong with a file (not a zip, truncated, a member missing or added,
compressed or oversized members, flipped bytes, a wrong format name or version,
values that do not describe a valid network), :func:`load` raises
:class:`NetworkFileError`, a ``ValueError`` that names the file and the problem.
Every shape and dtype is checked before an array reaches the network, since the
kernels trust them.  A missing file raises ``FileNotFoundError`` as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import warnings
import zipfile

import numpy as np

FORMAT = "mlpfast.network"
FORMAT_VERSION = 1
SUFFIX = ".npz"

_ARRAYS = ("params", "state", "counters", "history")
_MEMBERS = frozenset(("meta", "checksum") + _ARRAYS)
# The metadata is a few hundred bytes; anything much larger is not ours.
_MAX_META_BYTES = 1 << 20


class NetworkFileError(ValueError):
    """A file that :func:`load` cannot read as a saved network (damaged, truncated,
    tampered with, or written in an unsupported format version)."""


# ----------------------------------------------------------------------------- save
def _target(path) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path.endswith(SUFFIX):
        path += SUFFIX  # as np.savez does
    if os.path.islink(path):
        # Replace the file the link points to, as writing through it would, not the link.
        path = os.path.realpath(path)
    return path


def _metadata(net) -> dict:
    from . import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlpfast_version": __version__,
        "layer_sizes": [int(n) for n in net.layer_sizes],
        "activations": list(net.activations),
        "loss": net.loss_name,
        "dtype": net.dtype.name,
        "seed": None if net.seed is None else int(net.seed),
        "n_threads": int(net.n_threads),
        "optimizer": net._optimizer,
        "shuffle_seed": None if net._shuffle_seed is None else int(net._shuffle_seed),
    }


def _checksum(meta_json: str, arrays: dict) -> str:
    digest = hashlib.sha256()
    digest.update(meta_json.encode())
    for name in _ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.data)
    return digest.hexdigest()


def _open_exclusive(directory: str, name: str) -> tuple[str, int]:
    # os.open with mode 0o666 applies the umask, so the file gets the permissions
    # np.savez would have given it (tempfile.mkstemp would force 0o600).
    while True:
        temp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(net, path) -> str:
    """Write ``net`` to ``path`` atomically; return the path written.

    Parameters
    ----------
    net : Network
    path : str or os.PathLike
        ``.npz`` is appended when missing, as ``np.savez`` does.

    Returns
    -------
    str
        The file written (with the ``.npz`` suffix).
    """
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"save needs a Network, got {type(net).__name__}")
    target = _target(path)
    meta_json = json.dumps(_metadata(net), sort_keys=True)
    arrays = {
        "params": np.ascontiguousarray(net.params),
        "state": np.ascontiguousarray(net._state),
        "counters": np.ascontiguousarray(net._counters, dtype=np.int64),
        "history": np.asarray(net.history, dtype=np.float64).reshape(-1),
    }
    checksum = _checksum(meta_json, arrays)
    directory, name = os.path.split(os.path.abspath(target))
    temp, fd = _open_exclusive(directory, name)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(meta_json), checksum=np.array(checksum), **arrays)
            f.flush()
            os.fsync(f.fileno())
        try:  # overwriting keeps the old file's permissions, as np.savez would
            os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))
        except FileNotFoundError:
            pass
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _sync_directory(directory)
    return target


# ----------------------------------------------------------------------------- load
def _source(path) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.exists(path) and not path.endswith(SUFFIX) and os.path.exists(path + SUFFIX):
        path += SUFFIX
    return path


def _read_members(path: str) -> tuple[dict, dict, str]:
    """Parse the file into (metadata, arrays, stored checksum), checking its structure."""

    def fail(problem):
        return NetworkFileError(f"{path} is not a readable mlpfast network file: {problem}")

    # Opened here, outside the error translation below: a permission or I/O problem
    # is reported as the OSError it is, not as a damaged file.
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        try:
            npz = np.load(f, allow_pickle=False)
        except Exception as exc:  # zipfile, numpy header and pickle refusals vary in type
            raise fail(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy
            raise fail("it holds a single array, not an .npz archive")
        with npz:
            infos = {info.filename: info for info in npz.zip.infolist()}
            names = {name[:-4] if name.endswith(".npy") else name for name in infos}
            if "meta" not in names:
                raise fail("no 'meta' member (was it written by mlpfast.persistence.save?)")
            for info in infos.values():
                _check_member(npz, info, file_size, fail)
            meta = _read_meta(npz, fail)
            if meta.get("format") != FORMAT:
                raise fail(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            version = meta.get("format_version")
            if version != FORMAT_VERSION:
                newer = _is_int(version) and version > FORMAT_VERSION
                raise NetworkFileError(
                    f"{path} uses mlpfast network format version {version!r}, but this "
                    f"mlpfast ({_own_version()}) reads version {FORMAT_VERSION}"
                    + ("; upgrade mlpfast to load it" if newer else "")
                )
            if names != _MEMBERS or len(infos) != len(_MEMBERS):
                missing, extra = sorted(_MEMBERS - names), sorted(names - _MEMBERS)
                raise fail(f"members missing {missing}, unexpected {extra}")
            try:
                arrays = {name: npz[name] for name in _ARRAYS}
                checksum = npz["checksum"]
            except Exception as exc:
                raise fail(f"{type(exc).__name__}: {exc}") from None
    if checksum.shape != () or checksum.dtype.kind != "U":
        raise fail("the checksum is not a string")
    return meta, arrays, str(checksum)


def _check_member(npz, info, file_size: int, fail) -> None:
    """Refuse a member whose reading could allocate more than the file holds."""
    # np.savez stores members uncompressed, so none can be larger than the file, and
    # an array can be no larger than its member: this bounds what reading allocates,
    # whatever a tampered header claims.
    if info.compress_type != zipfile.ZIP_STORED or info.file_size > file_size:
        raise fail(f"member {info.filename!r} is compressed or larger than the file")
    try:
        with npz.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(member)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    except Exception as exc:
        raise fail(
            f"member {info.filename!r} has no valid array header ({type(exc).__name__}: {exc})"
        ) from None
    if nbytes > info.file_size:
        raise fail(
            f"member {info.filename!r} claims {nbytes} bytes of data but holds {info.file_size}"
        )


def _read_meta(npz, fail) -> dict:
    info = npz.zip.getinfo("meta.npy" if "meta.npy" in npz.zip.namelist() else "meta")
    if info.file_size > _MAX_META_BYTES:
        raise fail("the metadata member is too large")
    try:
        raw = npz["meta"]
    except Exception as exc:
        raise fail(f"cannot read the metadata: {type(exc).__name__}: {exc}") from None
    if raw.shape != () or raw.dtype.kind != "U":
        raise fail("the metadata is not a JSON string")
    try:
        meta = json.loads(str(raw))
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise fail(f"the metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise fail("the metadata is not a JSON object")
    meta["_json"] = str(raw)
    return meta


def _own_version() -> str:
    from . import __version__

    return __version__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(array: np.ndarray, dtype) -> bool:
    """Same kind and size as ``dtype``, in either byte order: a file written on a
    machine of the other endianness loads (copying converts)."""
    dtype = np.dtype(dtype)
    return array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize


def _build(path: str, meta: dict, arrays: dict):
    """A Network from checked metadata and arrays (every shape/dtype checked first)."""
    from ._kernels.optimizers import OPTIMIZERS, STATE_ROWS
    from ._kernels.train import N_COUNTERS
    from ._threads import max_threads
    from .network import Network

    def fail(problem):
        return NetworkFileError(f"{path} does not describe a valid network: {problem}")

    optimizer = meta.get("optimizer")
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise fail(f"unknown optimizer {optimizer!r}")
    shuffle_seed = meta.get("shuffle_seed")
    if shuffle_seed is not None and not (_is_int(shuffle_seed) and 0 <= shuffle_seed < 2**63):
        raise fail(f"shuffle_seed {shuffle_seed!r} is not an int in [0, 2**63)")
    n_threads = meta.get("n_threads")
    if not (_is_int(n_threads) and n_threads >= 1):
        raise fail(f"n_threads {n_threads!r} is not a positive int")
    sizes = meta.get("layer_sizes")
    if not (isinstance(sizes, list) and len(sizes) >= 2 and all(_is_int(s) for s in sizes)):
        raise fail(f"layer_sizes {sizes!r} is not a list of ints")
    activations = meta.get("activations")
    if not (isinstance(activations, list) and all(isinstance(a, str) for a in activations)):
        raise fail(f"activations {activations!r} is not a list of names")
    if meta.get("dtype") not in ("float32", "float64"):
        raise fail(f"dtype {meta.get('dtype')!r} is not float32 or float64")
    dtype = np.dtype(meta["dtype"])
    # The parameter count, checked against the stored buffer *before* Network()
    # allocates one: tampered sizes must not make us allocate terabytes.
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    params = arrays["params"]
    if not _matches(params, dtype) or params.shape != (n_params,):
        raise fail(
            f"params has dtype {params.dtype} and shape {params.shape}; layer_sizes "
            f"{sizes} in {dtype} need ({n_params},)"
        )
    rows = 0 if optimizer is None else STATE_ROWS[OPTIMIZERS[optimizer]]
    state = arrays["state"]
    if not _matches(state, dtype) or state.shape != (rows, n_params):
        raise fail(
            f"the optimizer state has dtype {state.dtype} and shape {state.shape}; "
            f"optimizer {optimizer!r} needs {dtype} of shape ({rows}, {n_params})"
        )
    counters = arrays["counters"]
    if not _matches(counters, np.int64) or counters.shape != (N_COUNTERS,) or counters.min() < 0:
        raise fail(f"the training counters {counters!r} are not {N_COUNTERS} non-negative int64")
    history = arrays["history"]
    if not _matches(history, np.float64) or history.ndim != 1:
        raise fail("the loss history is not a 1-D float64 array")
    if n_threads > max_threads():
        warnings.warn(
            f"{path} was saved with n_threads={n_threads}; this process allows "
            f"{max_threads()} (NUMBA_NUM_THREADS), so a resumed fit matches the "
            f"saved run within the cross-thread tolerance, not bitwise",
            RuntimeWarning,
            stacklevel=3,
        )
        n_threads = max_threads()
    try:
        net = Network(
            sizes,
            activations,
            meta.get("loss"),
            dtype=dtype,
            seed=meta.get("seed"),
            n_threads=n_threads,
        )
    except (TypeError, ValueError) as exc:
        raise fail(str(exc)) from None
    net.params[...] = params  # in place: coefs/intercepts stay views into it
    net._state = np.array(state, dtype=dtype, order="C", copy=True)
    net._optimizer = optimizer
    net._counters[...] = counters
    net._shuffle_seed = shuffle_seed
    net.history = history.astype(np.float64).tolist()
    return net


def load(path):
    """Read a network written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        When it does not exist and lacks the ``.npz`` suffix, ``path + ".npz"`` is read.

    Returns
    -------
    Network
        With the saved architecture, parameters, optimizer state, training position
        and loss history; a further ``fit`` continues the saved run.  ``n_threads``
        is capped at this machine's ``NUMBA_NUM_THREADS`` (results then agree with
        the saved run within the cross-thread tolerance, not bitwise).

    Raises
    ------
    NetworkFileError
        (a ``ValueError``) when the file is damaged, truncated, tampered with or of
        another format version.
    FileNotFoundError
        When neither ``path`` nor ``path + ".npz"`` exists.
    """
    path = _source(path)
    meta, arrays, stored = _read_members(path)
    meta_json = meta.pop("_json")
    if _checksum(meta_json, arrays) != stored:
        raise NetworkFileError(
            f"{path} is corrupted: its checksum does not match its contents (the parameters, "
            f"optimizer state or metadata changed after it was written)"
        )
    return _build(path, meta, arrays)
