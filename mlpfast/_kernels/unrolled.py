"""Unrolled training kernels for small networks: one pass over the samples a step.

The general kernels (``dense.py``) run a layer as passes along rows of samples:
for the tutorial's [2, 4, 3, 1] network that is ~80 passes over 1000 samples a
step, each bound by its own loads and stores, not by arithmetic (README,
"Performance").  When every layer is at most ``MAX_WIDTH`` units wide and the
network has at most ``MAX_WEIGHTS`` weights, this module writes the minibatch
gradient out for that one architecture: every weight, every activation and
delta of a sample and every gradient sum is a local, so forward, loss, backward
and the weight gradients of a sample are straight-line code, and one loop over
the minibatch's samples does it all, vectorized across samples.  The epoch loop
and the optimizer are the general ones (``train.train_epochs_unrolled``), which
call the generated kernel through a function pointer: they are compiled once per
dtype, the generated kernel once per architecture.

Measured on the tutorial (Zen 4, float64, one thread, same process, 1500-epoch
fits): 11.2-11.5 us an iteration with the general kernels, 8.8-9.2 us unrolled;
what is left is mostly the log-loss (exp, log1p and a division per sample:
without it the gradient takes 4.3 us).  Compile time (empty cache): the tutorial's
kernel 1.6-3.5 s, the epoch loop 4.2 s once per dtype, against ~15 s for the
general kernels, which a small network's fit then never needs.

The source is generated per (layer sizes, activations, loss, dtype) and written
to ``<kernel cache>/unrolled/`` as a real module, so Numba caches its machine
code like any kernel's (an ``exec``'d function cannot be cached) and the next
process loads it.  The module name is a hash of its text, and a file whose text
is not exactly what this module generates is rewritten before it is imported,
so a stale or damaged file never runs.

The activations and losses are the general kernels' own scalar functions
(``activate``, ``derivative``, the log-loss), called with constant codes, so the
two paths compute the same formulas; only the order of the sums differs
(``tests/test_unrolled.py`` checks both paths train the same model).  Losses with
a softmax or a Poisson output are not unrolled (their ``log`` is a library call,
which keeps the loop scalar), nor are fits split across threads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

import numba
from numba.core import sigutils, types

from .. import _config
from .activations import CANONICAL_NAMES
from .losses import LOGISTIC, SQUARED

# Widest layer and most weights that are unrolled (every weight and gradient sum
# is a local).  Measured (Zen 4, float64, one thread, us an epoch of 1000 rows,
# unrolled vs general): [2,8,8,1] 26.8 vs 34.6 full batch, 91 vs 79 in batches of
# 32; [4,8,8,4] 43 vs 113 and 118 vs 137; [8,8,8,8] (192 weights) 70 vs 242 and
# 222 vs 295.  Wider layers go to BLAS in the general kernels.
MAX_WIDTH = 8
MAX_WEIGHTS = 192

GENERATED_DIR = _config.UNROLLED_DIR

_lock = threading.Lock()
_loaded: dict[str, object] = {}


# The unrolled kernel's signature (``t``: the network's dtype): the arguments
# ``train.train_epochs_unrolled`` passes it, as typed there.
_SIGNATURE = (
    "float64({t}[::1], {t}[::1], {t}[::1], {t}[::1], {t}[::1], int64[::1], int64, int64,"
    " boolean, boolean, float64)"
)


def eligible(sizes, loss_kind) -> bool:
    """Whether a network of these layer sizes and loss kind gets an unrolled kernel."""
    if GENERATED_DIR is None or numba.config.DISABLE_JIT or loss_kind not in (LOGISTIC, SQUARED):
        return False
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    return max(sizes) <= MAX_WIDTH and n_weights <= MAX_WEIGHTS


class KernelPointer:
    """A compiled kernel passed to another kernel as a function pointer.

    ``train.train_epochs_unrolled`` takes the unrolled gradient as an argument of
    Numba's function type, so it is compiled (and cached) once per dtype and calls
    whichever architecture's kernel it is given.  Numba types this object by
    ``_numba_type_`` and reads its address through ``__wrapper_address__``: passing
    the dispatcher itself would make it look the address up on every call (25 us).
    """

    def __init__(self, dispatcher):
        (args,) = dispatcher.signatures
        compiled = dispatcher.overloads[args]
        self._numba_type_ = types.FunctionType(compiled.signature)
        self._address = compiled.library.get_pointer_to_function(
            compiled.fndesc.llvm_cfunc_wrapper_name
        )
        self._dispatcher = dispatcher  # keeps the machine code alive

    def __wrapper_address__(self):
        return self._address


def trainer_kernel(sizes, codes, loss_kind, dtype_name) -> KernelPointer:
    """The unrolled minibatch-gradient kernel of this architecture, generated and
    imported (compiled, or loaded from the cache) on first use in a process."""
    key = (tuple(sizes), tuple(codes), loss_kind, dtype_name)
    with _lock:
        pointer = _loaded.get(key)
        if pointer is None:
            source = generate(*key)
            name = f"mlpfast_unrolled_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
            module = _import(name, source)
            args, _ = sigutils.normalize_signature(_SIGNATURE.format(t=dtype_name))
            module.gradient.compile(args)  # or load it from the cache
            pointer = KernelPointer(module.gradient)
            _loaded[key] = pointer
    return pointer


def _import(name, source):
    path = GENERATED_DIR / f"{name}.py"
    try:
        current = path.read_text()
    except (OSError, UnicodeDecodeError):
        current = None
    if current != source:
        # Write a new file and rename it over the old one: another process importing
        # the same architecture at the same time sees either file whole.
        GENERATED_DIR.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=GENERATED_DIR, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(source)
        os.replace(temporary, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# ------------------------------------------------------------------------ generation
def generate(sizes, codes, loss_kind, dtype_name) -> str:
    """The Python source of the unrolled kernels for one architecture."""
    n_layers = len(sizes) - 1
    offsets = []
    offset = 0
    for k in range(n_layers):
        offsets.append((offset, offset + sizes[k] * sizes[k + 1]))
        offset += sizes[k] * sizes[k + 1] + sizes[k + 1]
    names = ", ".join(CANONICAL_NAMES[c] for c in codes)
    loss_name = "log-loss" if loss_kind == LOGISTIC else "squared error"
    out = [
        f'"""Generated by mlpfast._kernels.unrolled for layers {list(sizes)}, activations',
        f'({names}), {loss_name}.  Do not edit: a file that differs is rewritten."""',
        "",
        "import numpy as np",
        "",
        "from mlpfast._config import kernel",
        "from mlpfast._kernels.activations import activate, derivative",
        "from mlpfast._kernels.losses import _logistic",
        "from mlpfast._kernels.scalars import like",
        "",
        "",
        "@kernel",
        "def gradient(params, grads, Xf, Yf, weights, perm, start, size, use_perm,"
        " use_weights, scale):",
        '    """The minibatch\'s gradient into ``grads``; returns sum_i w_i l_i."""',
        "    one = like(1.0, params)",
        "    zero = like(0.0, params)",
        "    scale = like(scale, params)",
    ]
    for k in range(n_layers):
        w0, b0 = offsets[k]
        for i in range(sizes[k]):
            for j in range(sizes[k + 1]):
                out.append(f"    w{k}_{i}_{j} = params[{w0 + i * sizes[k + 1] + j}]")
        for j in range(sizes[k + 1]):
            out.append(f"    b{k}_{j} = params[{b0 + j}]")
    for k in range(n_layers):
        for i in range(sizes[k]):
            for j in range(sizes[k + 1]):
                out.append(f"    gw{k}_{i}_{j} = zero")
        for j in range(sizes[k + 1]):
            out.append(f"    gb{k}_{j} = zero")
    out.append("    total = 0.0")
    d, m = sizes[0], sizes[-1]
    out.append(f"    ud, um = np.uint64({d}), np.uint64({m})")
    # One loop per (shuffled?, weighted?): a condition inside the loop keeps it scalar.
    variants = [
        ("use_perm and use_weights", True, True),
        ("use_perm", True, False),
        ("use_weights", False, True),
        (None, False, False),
    ]
    for position, (condition, shuffled, weighted) in enumerate(variants):
        indent = "        "
        if condition is None:
            out.append("    else:")
        else:
            out.append(f"    {'if' if position == 0 else 'elif'} {condition}:")
        out.append(f"{indent}for r in range(size):")
        body = indent + "    "
        if shuffled:
            out.append(f"{body}row = np.uint64(perm[start + r])")
        else:
            out.append(f"{body}row = np.uint64(start + r)")
        out.extend(_sample_body(sizes, codes, loss_kind, weighted, body))
    for k in range(n_layers):
        w0, b0 = offsets[k]
        for i in range(sizes[k]):
            for j in range(sizes[k + 1]):
                out.append(f"    grads[{w0 + i * sizes[k + 1] + j}] = gw{k}_{i}_{j}")
        for j in range(sizes[k + 1]):
            out.append(f"    grads[{b0 + j}] = gb{k}_{j}")
    out.append("    return total")
    return "\n".join(out) + "\n"


def _sample_body(sizes, codes, loss_kind, weighted, ind):
    """Straight-line code for one sample: forward, loss, backward, gradient sums."""
    n_layers = len(sizes) - 1
    lines = []
    for i in range(sizes[0]):
        lines.append(f"{ind}a0_{i} = Xf[row * ud + np.uint64({i})]")
    for k in range(n_layers):
        for j in range(sizes[k + 1]):
            terms = " + ".join(f"w{k}_{i}_{j} * a{k}_{i}" for i in range(sizes[k]))
            lines.append(f"{ind}z{k + 1}_{j} = b{k}_{j} + {terms}")
            if k < n_layers - 1:
                lines.append(f"{ind}a{k + 1}_{j} = activate(z{k + 1}_{j}, {codes[k]})")
    last = n_layers
    lines.append(f"{ind}wi = weights[row]" if weighted else f"{ind}wi = one")
    lines.append(f"{ind}row_scale = scale * wi")
    losses = []
    for j in range(sizes[-1]):
        lines.append(f"{ind}t{j} = Yf[row * um + np.uint64({j})]")
        if loss_kind == LOGISTIC:
            lines.append(f"{ind}l{j}, g{j} = _logistic(z{last}_{j}, t{j}, one)")
            lines.append(f"{ind}d{last}_{j} = row_scale * g{j}")
        else:
            lines.append(f"{ind}o{j} = activate(z{last}_{j}, {codes[-1]})")
            lines.append(f"{ind}e{j} = o{j} - t{j}")
            lines.append(f"{ind}l{j} = e{j} * e{j}")
            lines.append(f"{ind}d{last}_{j} = row_scale * e{j} * derivative(o{j}, {codes[-1]})")
        losses.append(f"l{j}")
    lines.append(f"{ind}total += wi * ({' + '.join(losses)})")
    for k in range(n_layers - 1, -1, -1):
        for j in range(sizes[k + 1]):
            lines.append(f"{ind}gb{k}_{j} += d{k + 1}_{j}")
            for i in range(sizes[k]):
                lines.append(f"{ind}gw{k}_{i}_{j} += a{k}_{i} * d{k + 1}_{j}")
        if k > 0:
            for i in range(sizes[k]):
                terms = " + ".join(f"w{k}_{i}_{j} * d{k + 1}_{j}" for j in range(sizes[k + 1]))
                lines.append(f"{ind}d{k}_{i} = ({terms}) * derivative(a{k}_{i}, {codes[k - 1]})")
    return lines
