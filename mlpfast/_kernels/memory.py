"""Prefetching memory that a loop will read soon (LLVM's ``llvm.prefetch``): a
hint to the processor, which never faults and never changes a result."""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import kernel

_LINE_BYTES = 64  # cache line: every x86-64 and most ARM64 processors


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the processor to bring ``array[index]``'s cache line in for reading (a
    hint: no fault for any address, no effect on results)."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"):
        raise TypeError("prefetch works on 1-D C-contiguous arrays")

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32]),
            "llvm.prefetch.p0i8",
        )
        # read, highest locality (keep in all cache levels), data cache
        builder.call(function, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(array, index), codegen


if numba.config.DISABLE_JIT:  # kernels run as Python (debugging): nothing to hint

    def prefetch(array, index):  # noqa: F811
        pass


@kernel(inline="always")
def prefetch_span(array, start, count):
    """Prefetch every cache line of ``array[start:start + count]`` (unsigned indices)."""
    step = np.uint64(max(1, _LINE_BYTES // array.itemsize))
    for i in range(start, start + count, step):
        prefetch(array, i)
    prefetch(array, start + count - np.uint64(1))
