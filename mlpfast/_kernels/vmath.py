"""Vectorizable exp, log1p and log (of x >= 1) for float32 and float64.

``math.exp`` in a Numba loop is a scalar libm call, so loops that use it do not
vectorize: 3.1 us per 1,000 float64 exps against 0.55 us for :func:`exp` below
(measured on the project machine; numpy's own SIMD exp: 0.82 us).  These use
range reduction to ``x = k ln2 + r`` and a polynomial for ``exp(r)``, and build
``2**k`` from its bits, all of which LLVM vectorizes.

Accuracy: float64 within ~1e-15 relative without fastmath reassociation and
~3e-14 with it (mlpfast's kernel flags); float32 within a few ulp.  Inputs are
clamped to the finite range: exp(x) for x < -708 (float32: -87) returns
``2**-1022``-ish tiny values rather than subnormals, which changes nothing a
sigmoid, softmax or log-loss can show.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .._config import kernel


@intrinsic
def _int64_as_float64(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _int32_as_float32(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _float64_as_int64(typingctx, value):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _float32_as_int32(typingctx, value):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


_LOG2E = 1.4426950408889634
# 1/k! for the expm1 series (index k).
_INV_FACTORIAL = np.array([1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(18)])
# ln 2 split so that k * _LN2_HI is exact for |k| < 2**20 (fdlibm's constants).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@kernel
def exp64(x):
    x = min(max(x, -708.0), 709.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    # Taylor series of exp(r) on |r| <= ln2 / 2: the 13th-degree term bounds the
    # truncation error by 4e-18 relative.
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _int64_as_float64((np.int64(k) + 1023) << 52)


@kernel
def exp32(x):
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    k = np.floor(x * np.float32(_LOG2E) + np.float32(0.5))
    r = (x - k * np.float32(0.693145751953125)) - k * np.float32(1.428606765330187045e-06)
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    return p * _int32_as_float32((np.int32(k) + np.int32(127)) << np.int32(23))


@kernel
def log1p_unit64(u):
    """log(1 + u) for u in [0, 1]: 2 atanh(s), s = u / (2 + u) <= 1/3, by its series
    (terms to s^35: truncation below 1e-17 relative)."""
    s = u / (2.0 + u)
    s2 = s * s
    p = 0.02857142857142857  # 1/35
    p = p * s2 + 0.030303030303030304  # 1/33
    p = p * s2 + 0.03225806451612903  # 1/31
    p = p * s2 + 0.034482758620689655  # 1/29
    p = p * s2 + 0.037037037037037035  # 1/27
    p = p * s2 + 0.04  # 1/25
    p = p * s2 + 0.043478260869565216  # 1/23
    p = p * s2 + 0.047619047619047616  # 1/21
    p = p * s2 + 0.05263157894736842  # 1/19
    p = p * s2 + 0.058823529411764705  # 1/17
    p = p * s2 + 0.06666666666666667  # 1/15
    p = p * s2 + 0.07692307692307693  # 1/13
    p = p * s2 + 0.09090909090909091  # 1/11
    p = p * s2 + 0.1111111111111111  # 1/9
    p = p * s2 + 0.14285714285714285  # 1/7
    p = p * s2 + 0.2  # 1/5
    p = p * s2 + 0.3333333333333333  # 1/3
    p = p * s2 + 1.0  # 1/1
    return 2.0 * s * p


@kernel
def log1p_unit32(u):
    s = u / (np.float32(2.0) + u)
    s2 = s * s
    p = np.float32(1.0 / 17.0)
    p = p * s2 + np.float32(1.0 / 15.0)
    p = p * s2 + np.float32(1.0 / 13.0)
    p = p * s2 + np.float32(1.0 / 11.0)
    p = p * s2 + np.float32(1.0 / 9.0)
    p = p * s2 + np.float32(1.0 / 7.0)
    p = p * s2 + np.float32(1.0 / 5.0)
    p = p * s2 + np.float32(1.0 / 3.0)
    p = p * s2 + np.float32(1.0)
    return np.float32(2.0) * s * p


@kernel
def log_at_least_one64(x):
    """log(x) for finite x >= 1: x = 2^k m with m in [1, 2), log(x) = k ln2 + log1p(m - 1)."""
    bits = _float64_as_int64(x)
    k = (bits >> 52) - 1023
    m = _int64_as_float64((bits & 0xFFFFFFFFFFFFF) | (1023 << 52))
    kf = float(k)
    return kf * _LN2_HI + (log1p_unit64(m - 1.0) + kf * _LN2_LO)


@kernel
def log_at_least_one32(x):
    bits = _float32_as_int32(x)
    k = (bits >> np.int32(23)) - np.int32(127)
    m = _int32_as_float32((bits & np.int32(0x7FFFFF)) | np.int32(127 << 23))
    kf = np.float32(k)
    return kf * np.float32(0.693145751953125) + (
        log1p_unit32(m - np.float32(1.0)) + kf * np.float32(1.428606765330187045e-06)
    )


@kernel
def expm1_64(x):
    """exp(x) - 1 without cancellation near 0: Taylor series below |x| = 0.5."""
    if abs(x) >= 0.5:
        return exp64(x) - 1.0
    p = 1.0 / 355687428096000.0  # 1/17!
    for k in range(16, 0, -1):
        p = p * x + _INV_FACTORIAL[k]
    return p * x


@kernel
def expm1_32(x):
    if abs(x) >= np.float32(0.5):
        return exp32(x) - np.float32(1.0)
    p = np.float32(1.0 / 40320.0)  # 1/8!
    for k in range(7, 0, -1):
        p = p * x + np.float32(_INV_FACTORIAL[k])
    return p * x


def exp(x):
    """exp(x) in x's precision, vectorizable (see module doc)."""
    return np.exp(x)


def expm1(x):
    """exp(x) - 1 in x's precision, vectorizable and accurate near 0."""
    return np.expm1(x)


def tanh(x):
    """tanh(x) in x's precision, vectorizable: sign(x) * -u / (2 + u), u = expm1(-2|x|)."""
    return np.tanh(x)


def log1p_unit(u):
    """log1p(u) for u in [0, 1], vectorizable."""
    return np.log1p(u)


def log_at_least_one(x):
    """log(x) for finite x >= 1 (a softmax's normalizer), vectorizable."""
    return np.log(x)


@overload(exp)
def _exp_overload(x):
    if x == types.float32:
        return lambda x: exp32(x)
    return lambda x: exp64(x)


@overload(log1p_unit)
def _log1p_unit_overload(u):
    if u == types.float32:
        return lambda u: log1p_unit32(u)
    return lambda u: log1p_unit64(u)


@overload(log_at_least_one)
def _log_at_least_one_overload(x):
    if x == types.float32:
        return lambda x: log_at_least_one32(x)
    return lambda x: log_at_least_one64(x)


@overload(expm1)
def _expm1_overload(x):
    if x == types.float32:
        return lambda x: expm1_32(x)
    return lambda x: expm1_64(x)


@overload(tanh)
def _tanh_overload(x):
    def impl(x):
        u = expm1(-2 * abs(x))
        t = -u / (2 + u)
        return t if x >= 0 else -t

    if x == types.float32:

        def impl32(x):
            u = expm1(np.float32(-2.0) * abs(x))
            t = -u / (np.float32(2.0) + u)
            return t if x >= 0 else -t

        return impl32
    return impl
