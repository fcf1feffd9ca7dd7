"""Atomic operations on int64 arrays, for threads that coordinate inside one
parallel region (see ``train.py``, "one parallel region per epoch").

Numba has no atomics on the CPU target, and a plain load in a spin loop may be
hoisted out of the loop by LLVM, so these emit LLVM's atomic instructions
directly.  All are sequentially consistent: they also order the ordinary loads
and stores around them (a task's results are visible to a thread that sees the
task counted done).
"""

import platform
import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_ORDER = "seq_cst"
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
# POSIX ``sched_yield`` is resolved from the C library already loaded in the
# process; Windows has no such symbol (there a waiting thread only spins).
_HAS_SCHED_YIELD = sys.platform != "win32"


def _check(counters):
    if not (
        isinstance(counters, types.Array)
        and counters.ndim == 1
        and counters.dtype == types.int64
        and counters.layout == "C"
    ):
        raise TypeError("atomics work on 1-D C-contiguous int64 arrays")


def _element_pointer(context, builder, counters_type, counters, index, index_type):
    array = context.make_array(counters_type)(context, builder, counters)
    index = context.cast(builder, index, index_type, types.intp)
    return cgutils.get_item_pointer(
        context, builder, counters_type, array, [index], wraparound=False
    )


@intrinsic
def atomic_load(typingctx, counters, index):
    """``counters[index]``, read atomically (never hoisted out of a loop)."""
    _check(counters)

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(
            context, builder, signature.args[0], args[0], args[1], signature.args[1]
        )
        return builder.load_atomic(pointer, _ORDER, 8)

    return types.int64(counters, index), codegen


@intrinsic
def atomic_add(typingctx, counters, index, value):
    """``counters[index] += value`` atomically; returns the old value."""
    _check(counters)

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(
            context, builder, signature.args[0], args[0], args[1], signature.args[1]
        )
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, value, _ORDER)

    return types.int64(counters, index, value), codegen


@intrinsic
def compare_and_swap(typingctx, counters, index, expected, new):
    """If ``counters[index] == expected``, set it to ``new``, atomically.  Returns
    True when it did."""
    _check(counters)

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(
            context, builder, signature.args[0], args[0], args[1], signature.args[1]
        )
        expected = context.cast(builder, args[2], signature.args[2], types.int64)
        new = context.cast(builder, args[3], signature.args[3], types.int64)
        pair = builder.cmpxchg(pointer, expected, new, _ORDER, _ORDER)
        return builder.extract_value(pair, 1)

    return types.boolean(counters, index, expected, new), codegen


@intrinsic
def spin_pause(typingctx):
    """A spin-wait hint (x86 ``pause``): lets a sibling hyperthread run and
    saves power while a thread waits for another; a no-op elsewhere."""

    def codegen(context, builder, signature, args):
        if _X86:
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause"
            )
            builder.call(function, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def yield_cpu(typingctx):
    """Give this core to another runnable thread (``sched_yield``): a thread that
    has waited long is probably waiting for one that is not running."""

    def codegen(context, builder, signature, args):
        if _HAS_SCHED_YIELD:
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield"
            )
            builder.call(function, [])
        return context.get_dummy_value()

    return types.void(), codegen
