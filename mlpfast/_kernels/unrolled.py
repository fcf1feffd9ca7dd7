"""Unrolled training kernels for small networks: a few passes over the samples a step.

The general kernels (``dense.py``) run a layer as passes along rows of samples:
for the tutorial's [2, 4, 3, 1] network that is ~80 passes over 1000 samples a
step, each bound by its own loads and stores, not by arithmetic (README,
"Performance").  When every layer is at most ``MAX_WIDTH`` units wide and the
network has at most ``MAX_WEIGHTS`` weights, this module writes the minibatch
gradient out for that one architecture: every weight, every activation and
delta of a sample and every gradient sum is a local, so each phase of a sample
(forward, loss, one backward layer) is straight-line code, and a chunk of
``CHUNK`` samples runs as one loop per phase, vectorized across samples, with the
values between phases in a small scratch buffer (why phases: see ``CHUNK``).
The epoch loop and the optimizer are the general ones
(``train.train_epochs_unrolled``), which call the generated kernel through a
function pointer: they are compiled once per dtype, the generated kernel once
per architecture.

The kernel reads its rows contiguously: a shuffled minibatch is gathered first
(``train.gather_rows``, as the general kernels do), and unweighted rows read a
buffer of ones, so one kernel serves every case (four specialized loops had made
the compile four times longer: [8,8,8,8] took 32 s).

Measured (Zen 4, float64, one thread; the machine's speed drifts by ~30 %, so
each pair was measured alternately in one process):

- the tutorial's gradient (log-loss, 1000 rows) 6.2-6.5 us (fastest of 15 calls,
  four alternating process pairs; 8.0-11.0 for the single-loop kernel before the
  phases, 11.2-11.5 for the general kernels); a whole ``Network.fit`` iteration
  7.3-8.4 us against 9.4-13.5 before the phases;
- before the phases, 1000-row epochs (squared error): [2,8,8,1] 32 vs 37 us for
  the general kernels, [4,8,8,4] 33 vs 115, [8,8,8,8] 70 vs 242; in minibatches
  of 32 rows 89 vs 87, 94 vs 133, 192 vs 241; with the phases [8,8,8,8] 47 against
  69 us for the single loop, and minibatches of 8-64 rows of the tutorial's
  network take the same time as with the single loop (within the noise);
- compile time with an empty cache (the phases cost 20-50 % more): 2.5 s for the
  tutorial's kernel, 4.7 s for [4,8,8,4], 8.7 s for [8,8,8,8] (per dtype, this
  process's first compile included), plus ~4 s once per dtype for the epoch loop;
  the general kernels take ~15 s, and a small network's fit never needs them.

The source is generated per (layer sizes, activations, loss) and written to
``<kernel cache>/unrolled/`` as a real module (both dtypes compile from it), so
Numba caches its machine code like any kernel's (an ``exec``'d function cannot
be cached) and the next process loads it.  The module name is a hash of its
text, and a file whose text is not exactly what this module generates is
rewritten before it is imported, so a stale or damaged file never runs.  If the
file cannot be written, the network trains with the general kernels (with a
warning).

The activations and the log-loss are the general kernels' own scalar functions
(``activate``, ``derivative``, ``_logistic``), called with constant codes, so
for them the two paths compute the same formulas and only the order of the sums
differs (``tests/test_unrolled.py`` checks both paths train the same model).
The softmax is written out here, with the general path's formulas
(``losses._softmax_rows``): probabilities ``s_j / norm`` with ``s_j = exp(z_j -
peak)``, and the loss ``sum(y) log(norm) - sum_j y_j (z_j - peak)``, the
normalizer's log by ``vmath.log_at_least_one`` (libm's ``log`` is a library
call, which would keep the loop scalar).  Poisson losses are not
unrolled (they take the log of any positive target), nor are fits split across
threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import tempfile
import threading

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

from .. import _config
from .activations import CANONICAL_NAMES
from .losses import LOGISTIC, SOFTMAX_CE, SQUARED

# Widest layer and most weights that are unrolled (every weight and gradient sum
# is a local).  At 192 weights ([8,8,8,8]) the unrolled kernel was still 1.26-3.5x
# faster than the general kernels (see above); wider layers go to BLAS there.
MAX_WIDTH = 8
MAX_WEIGHTS = 192

# Rows a chunk.  A chunk runs in phases, each a loop over its rows (``generate``):
# in one loop doing a row's whole forward, loss and backward, each iteration was
# one long chain of dependent operations (the logit waits for both layers, the
# log-loss's exp and division for the logit, every delta for the loss), longer
# than the processor's out-of-order window could overlap with the next
# iteration's; short phase loops overlap freely, and each holds only its own
# layer's gradient sums in registers.  Measured (float64, one thread, 1000 rows,
# medians against the one-loop kernel in the same process): the tutorial's
# [2,4,3,1] log-loss 6.1 against 8.1 us, [4,8,8,3] softmax 28 against 45,
# [8,8,8,8] squared error 47 against 69; chunks of 64 rows were slower (6.6 us,
# the horizontal sums at each loop's end) and of 256 no faster (the scratch
# leaves L1 first for wide networks).
CHUNK = 128

GENERATED_DIR = _config.UNROLLED_DIR

_lock = threading.Lock()
_modules: dict[str, object] = {}  # generated module by its name
_pointers: dict[tuple, KernelPointer] = {}  # by (sizes, codes, loss kind, dtype)


def gradient_signature(dtype):
    """The unrolled kernel's signature for a network of ``dtype`` (a numba type):
    the arguments ``train._unrolled_step`` passes it, as typed there."""
    vector = types.Array(dtype, 1, "C")
    index = types.int64
    return types.float64(
        vector, vector, vector, index, vector, index, vector, index, index, types.float64, vector
    )


# Poisson is not unrolled: its loss takes log(y), for any positive target.
_UNROLLED_LOSSES = {
    SQUARED: "squared error",
    LOGISTIC: "log-loss",
    SOFTMAX_CE: "softmax cross-entropy",
}


def eligible(sizes, loss_kind) -> bool:
    """Whether a network of these layer sizes and loss kind gets an unrolled kernel."""
    if GENERATED_DIR is None or numba.config.DISABLE_JIT or loss_kind not in _UNROLLED_LOSSES:
        return False
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    return max(sizes) <= MAX_WIDTH and n_weights <= MAX_WEIGHTS


class KernelPointer:
    """Where a compiled unrolled kernel is, for ``train.train_epochs_unrolled``.

    The epoch loop is compiled (and cached) once per dtype and calls whichever
    architecture's kernel it is given, through :func:`function_at`.  It gets the
    addresses in a small int64 array (``addresses``), which Numba types as fast as
    any array.  Measured alternatives: the dispatcher itself as an argument makes
    Numba compile the loop again for every architecture and never load it from the
    cache; an object typed as a ``FunctionType`` is unboxed through two Python
    calls, ~7 us a call (an epoch of the tutorial's kernel is ~9 us).
    """

    def __init__(self, dispatcher, dtype):
        signature = gradient_signature(numba.from_dtype(dtype))
        compiled = dispatcher.overloads[signature.args]
        if compiled.signature != signature:  # function_at assumes this signature
            raise TypeError(f"unrolled kernel compiled as {compiled.signature}, not {signature}")
        library = compiled.library
        # [C wrapper, numba convention, item size of the dtype it was compiled for]:
        # train_epochs_unrolled checks the last against the network's parameters.
        self.addresses = np.array(
            [
                library.get_pointer_to_function(compiled.fndesc.llvm_cfunc_wrapper_name),
                library.get_pointer_to_function(compiled.fndesc.llvm_func_name),
                dtype.itemsize,
            ],
            dtype=np.int64,
        )
        if not self.addresses[:2].all():
            raise RuntimeError("the unrolled kernel has no machine code address")
        self._dispatcher = dispatcher  # keeps the machine code alive


@intrinsic
def function_at(typingctx, c_address, jit_address, params):
    """The unrolled kernel compiled at these addresses (``KernelPointer.addresses``)
    as a first-class function for a network with the dtype of ``params``.  The
    Numba-convention address is used for calls, so an exception in the kernel (an
    IndexError in a NUMBA_BOUNDSCHECK build) propagates to the caller; the C
    wrapper's is what Numba's function values carry besides."""
    function_type = types.FunctionType(gradient_signature(params.dtype))

    def codegen(context, builder, signature, args):
        pointer = context.get_value_type(types.voidptr)
        value = cgutils.create_struct_proxy(function_type)(context, builder)
        value.c_addr = builder.inttoptr(args[0], pointer)
        value.py_addr = pointer(None)
        value.jit_addr = builder.inttoptr(args[1], pointer)
        return value._getvalue()

    return function_type(types.int64, types.int64, params), codegen


def trainer_kernel(sizes, codes, loss_kind, dtype) -> KernelPointer:
    """The unrolled minibatch-gradient kernel of this architecture for ``dtype`` (a
    numpy dtype or its name), generated, imported and compiled (or loaded from the
    cache) on first use in a process.  Raises OSError when the generated module
    cannot be written."""
    # (keyed by what the caller passes: a fit passes the network's dtype object,
    # whose ``.name`` alone would cost ~2 us a fit)
    key = (tuple(sizes), tuple(codes), loss_kind, dtype)
    with _lock:
        pointer = _pointers.get(key)
        if pointer is None:
            source = generate(*key[:3])
            name = f"mlpfast_unrolled_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
            module = _modules.get(name)
            if module is None:
                module = _modules[name] = _import(name, source)
            dtype = np.dtype(dtype)
            module.gradient.compile(gradient_signature(numba.from_dtype(dtype)).args)  # or load
            pointer = _pointers[key] = KernelPointer(module.gradient, dtype)
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
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(source)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
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
def generate(sizes, codes, loss_kind) -> str:
    """The Python source of the unrolled kernel for one architecture (both dtypes
    compile from it).

    Rows go in chunks of ``CHUNK``; a chunk runs as a few loops over its rows, one
    per phase (see ``CHUNK``): the forward pass, the loss and output delta, then
    one loop per layer from the last, which adds up that layer's gradient and
    computes the deltas below it.  Between phases a row's values wait in
    ``scratch``, one block of ``CHUNK`` values per unit (``_scratch_slots``), each
    delta over its unit's activation once that is no longer needed."""
    parameters = list(_parameters(sizes))
    slots = _scratch_slots(sizes)
    names = ", ".join(CANONICAL_NAMES[c] for c in codes)
    loss_name = _UNROLLED_LOSSES[loss_kind]
    n_layers = len(sizes) - 1
    ind = " " * 12  # inside the chunk's row loops
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
        "from mlpfast._kernels.vmath import exp, log_at_least_one",
        "",
        "",
        "@kernel",
        "def gradient(params, grads, x, x_off, y, y_off, w, w_off, size, scale, scratch):",
        '    """The gradient over rows 0:size of x (features), y (targets) and w (sample',
        "    weights), which start at x_off, y_off and w_off, into ``grads``; returns",
        f'    sum_i w_i l_i, using the first {scratch_size(sizes)} values of ``scratch``."""',
        f"    if scratch.shape[0] < {scratch_size(sizes)}:",
        '        raise ValueError("the unrolled kernel\'s scratch buffer is too short")',
        "    one = like(1.0, params)",
        "    zero = like(0.0, params)",
        "    scale = like(scale, params)",
    ]
    out.extend(f"    {name} = params[{index}]" for name, index in parameters)
    out.extend(f"    g{name} = zero" for name, _ in parameters)
    out.append("    total = 0.0")
    # Unsigned offsets: numba tests every signed computed index for wraparound,
    # which keeps a loop scalar (see activations.py).
    out.append("    xo, yo, wo = np.uint64(x_off), np.uint64(y_off), np.uint64(w_off)")
    out.append(f"    ud, um = np.uint64({sizes[0]}), np.uint64({sizes[-1]})")
    out.append(f"    for first in range(0, size, {CHUNK}):")
    out.append(f"        rows = min({CHUNK}, size - first)")

    def row_loop(phase, lines):
        out.append(f"        # {phase}")
        out.append("        for c in range(rows):")
        if any(re.search(r"\brow\b", line) for line in lines):
            out.append(f"{ind}row = np.uint64(first + c)")
        out.extend(lines)

    def load(slot, name=None):
        return f"{ind}{name or slot} = scratch[np.uint64({slots[slot] * CHUNK}) + np.uint64(c)]"

    def store(name, value):
        return f"{ind}scratch[np.uint64({slots[name] * CHUNK}) + np.uint64(c)] = {value}"

    inputs = [f"{ind}a0_{i} = x[xo + row * ud + np.uint64({i})]" for i in range(sizes[0])]
    logits = [f"z{n_layers}_{j}" for j in range(sizes[-1])]
    out_deltas = [f"d{n_layers}_{j}" for j in range(sizes[-1])]
    row_loop(
        "forward: hidden activations and logits into scratch",
        inputs
        + _forward_lines(sizes, codes, ind)
        + [store(name, name) for name in slots],  # hidden activations, then logits
    )
    row_loop(
        "loss: the output deltas over the logits",
        [load(name) for name in logits]
        + _loss_lines(sizes, codes, loss_kind, ind)
        + [store(z, d) for z, d in zip(logits, out_deltas, strict=True)],
    )
    for k in range(n_layers - 1, -1, -1):
        below = inputs if k == 0 else [load(f"a{k}_{i}") for i in range(sizes[k])]
        above = [load(_slot_name(sizes, k + 1, j), f"d{k + 1}_{j}") for j in range(sizes[k + 1])]
        lines = below + above + _gradient_lines(sizes, k, ind)
        if k > 0:
            lines += _delta_lines(sizes, codes, k, ind)
            lines += [store(f"a{k}_{i}", f"d{k}_{i}") for i in range(sizes[k])]
        row_loop(f"layer {k}: its gradient" + (", the deltas below it" if k else ""), lines)
    out.extend(f"    grads[{index}] = g{name}" for name, index in parameters)
    out.append("    return total")
    return "\n".join(out) + "\n"


def _scratch_slots(sizes):
    """Where each unit's block of ``CHUNK`` values is in ``scratch`` (in blocks): a
    hidden unit's activation ``a{k}_{i}`` (later its delta), an output's logit
    ``z{L}_{j}`` (later its delta): ``sum(sizes[1:])`` blocks, the row width of the
    general kernels' activation workspace, which the fit passes as ``scratch``."""
    names = [_slot_name(sizes, k, j) for k in range(1, len(sizes)) for j in range(sizes[k])]
    return {name: slot for slot, name in enumerate(names)}


def _slot_name(sizes, k, j):
    """The scratch block holding layer k's unit j (its activation, later its delta)."""
    return f"z{k}_{j}" if k == len(sizes) - 1 else f"a{k}_{j}"


def scratch_size(sizes) -> int:
    """Values the unrolled kernel of a network with these layer sizes needs in
    ``scratch``."""
    return sum(sizes[1:]) * CHUNK


def _parameters(sizes):
    """(local name, index in the flat buffer) of every parameter, in buffer order:
    ``w{k}_{i}_{j}`` is W_k[i, j] of layer k, ``b{k}_{j}`` its bias j."""
    index = 0
    for k in range(len(sizes) - 1):
        for i in range(sizes[k]):
            for j in range(sizes[k + 1]):
                yield f"w{k}_{i}_{j}", index
                index += 1
        for j in range(sizes[k + 1]):
            yield f"b{k}_{j}", index
            index += 1


def _softmax_lines(last, m, ind):
    """Softmax + cross-entropy of one row, as ``losses.output_loss_and_delta``
    computes it (the normalizer's log by the vectorizable ``log_at_least_one``:
    the normalizer is at least 1, the peak's own term)."""
    z = [f"z{last}_{j}" for j in range(m)]
    lines = [f"{ind}peak = {z[0]}"]
    lines += [f"{ind}peak = max(peak, {z[j]})" for j in range(1, m)]
    lines += [f"{ind}s{j} = exp({z[j]} - peak)" for j in range(m)]
    lines.append(f"{ind}norm = {' + '.join(f's{j}' for j in range(m))}")
    lines.append(f"{ind}mass = {' + '.join(f't{j}' for j in range(m))}")
    terms = " + ".join(f"np.float64(t{j} * ({z[j]} - peak))" for j in range(m))
    lines.append(f"{ind}row_loss = np.float64(mass * log_at_least_one(norm)) - ({terms})")
    lines.append(f"{ind}inverse = one / norm")
    lines += [f"{ind}d{last}_{j} = row_scale * (s{j} * inverse * mass - t{j})" for j in range(m)]
    return lines


def _forward_lines(sizes, codes, ind):
    """A row's forward pass from its inputs ``a0_*`` to the logits ``z{L}_*``."""
    n_layers = len(sizes) - 1
    lines = []
    for k in range(n_layers):
        for j in range(sizes[k + 1]):
            terms = " + ".join(f"w{k}_{i}_{j} * a{k}_{i}" for i in range(sizes[k]))
            lines.append(f"{ind}z{k + 1}_{j} = b{k}_{j} + {terms}")
            if k < n_layers - 1:
                lines.append(f"{ind}a{k + 1}_{j} = activate(z{k + 1}_{j}, {codes[k]})")
    return lines


def _loss_lines(sizes, codes, loss_kind, ind):
    """A row's loss (added to ``total``) and output deltas ``d{L}_*`` from its
    logits ``z{L}_*``."""
    last = len(sizes) - 1
    lines = [f"{ind}wi = w[wo + row]", f"{ind}row_scale = scale * wi"]
    outputs = range(sizes[-1])
    lines += [f"{ind}t{j} = y[yo + row * um + np.uint64({j})]" for j in outputs]
    if loss_kind == SOFTMAX_CE:
        lines.extend(_softmax_lines(last, sizes[-1], ind))
        row_loss = "np.float64(row_loss)"
    else:
        for j in outputs:
            if loss_kind == LOGISTIC:
                lines.append(f"{ind}l{j}, g{j} = _logistic(z{last}_{j}, t{j}, one)")
                lines.append(f"{ind}d{last}_{j} = row_scale * g{j}")
            else:
                lines.append(f"{ind}o{j} = activate(z{last}_{j}, {codes[-1]})")
                lines.append(f"{ind}e{j} = o{j} - t{j}")
                lines.append(f"{ind}l{j} = e{j} * e{j}")
                lines.append(f"{ind}d{last}_{j} = row_scale * e{j} * derivative(o{j}, {codes[-1]})")
        # a row's loss sums in float64, as in losses.py
        row_loss = " + ".join(f"np.float64(l{j})" for j in outputs)
    lines.append(f"{ind}total += wi * ({row_loss})")
    return lines


def _gradient_lines(sizes, k, ind):
    """Add a row's share of layer k's gradient, from its inputs ``a{k}_*`` and the
    deltas ``d{k+1}_*``."""
    lines = []
    for j in range(sizes[k + 1]):
        lines.append(f"{ind}gb{k}_{j} += d{k + 1}_{j}")
        lines += [f"{ind}gw{k}_{i}_{j} += a{k}_{i} * d{k + 1}_{j}" for i in range(sizes[k])]
    return lines


def _delta_lines(sizes, codes, k, ind):
    """A row's deltas ``d{k}_*`` of hidden layer k from ``d{k+1}_*`` (through layer
    k's weights) and its activations ``a{k}_*``."""
    lines = []
    for i in range(sizes[k]):
        terms = " + ".join(f"w{k}_{i}_{j} * d{k + 1}_{j}" for j in range(sizes[k + 1]))
        lines.append(f"{ind}d{k}_{i} = ({terms}) * derivative(a{k}_{i}, {codes[k - 1]})")
    return lines
