"""Fused kernels for the drop-in ``mlpfast.reference.mlp``.

They reproduce the reference trainer's arithmetic as REFERENCE.md states it,
quirks included (``dW`` a sum but ``db`` a mean over the batch; the user's own
derivative, e.g. the factor-2 ``dsigmoid``), in the same order of operations per
element.  Sums over samples may be vectorized (reassociated), as BLAS's are in the
reference; nothing else is approximated, so float64 results agree with numpy's to
~1e-15 per step (the REFERENCE.md table is reproduced to 1e-9 after 150 steps).
They run only for callables that ``mlpfast.reference`` recognised by probing;
anything else goes through the user's own functions.

Buffers are **feature-major**: layer l's ``z``/``a``/``dz``/``da`` block is
``n_out x n`` (one row per unit), so every elementwise pass runs along a
contiguous row of samples; the user sees ``z[l]`` as the (n, n_out) transpose view.
``table`` rows are (n_in, n_out, param offset of W, of b, row offset of the block)
and ``kinds`` rows (activation kind, derivative kind).
"""

import math

from .._config import exact_kernel
from .vmath import exp64

# What a recognised callable computes (REFERENCE.md's functions and close kin).
# (Not tanh: libm's tanh and numpy's differ by an ulp near +-1, and 1 - tanh(z)^2
# there cancels down to that ulp, so the derivative can differ by 30 % from the
# reference's; a fuzz run found it.  tanh networks run on the numpy path.)
IDENTITY, RELU, SIGMOID_CLIPPED, SIGMOID = range(4)  # activations
ONE, DRELU, DSIGMOID_CLIPPED, DSIGMOID = range(4)  # derivatives (x a factor)
CROSS_ENTROPY_CLIPPED = 0  # d_cross_entropy with the eps clip

T_IN, T_OUT, T_W, T_B, T_ROW = range(5)
_EPS = 2.220446049250313e-16  # np.finfo(float).eps
# Below this magnitude integer targets convert to float64 exactly and -y, 1 - y
# neither round nor wrap around, so float64 arithmetic equals numpy's int arithmetic.
_EXACT_LIMIT = 2.0**52


@exact_kernel
def _sigmoid(z, clipped):
    if clipped:
        z = min(max(z, -500.0), 500.0)
        # Vectorizable exp (vmath): within ~1e-15 of numpy's in this range.
        return 1.0 / (1.0 + exp64(-z))
    return 1.0 / (1.0 + math.exp(-z))  # unclipped: exp may overflow to inf, as numpy's


@exact_kernel
def _activation(z, kind):
    if kind == RELU:
        return max(0.0, z) if z == z else z  # np.maximum propagates NaN
    if kind == SIGMOID_CLIPPED:
        return _sigmoid(z, True)
    if kind == SIGMOID:
        return _sigmoid(z, False)
    return z


@exact_kernel
def _derivative(z, kind, factor):
    if kind == DRELU:
        return 1.0 if z > 0 else 0.0
    if kind == DSIGMOID_CLIPPED or kind == DSIGMOID:
        s = _sigmoid(z, kind == DSIGMOID_CLIPPED)
        return factor * s * (1.0 - s)
    return factor


@exact_kernel
def _activate_row(z, a, kind):
    """a = f(z) along a row; one loop per kind so each vectorizes on its own."""
    n = z.shape[0]
    if kind == RELU:
        for i in range(n):
            a[i] = _activation(z[i], RELU)
    elif kind == SIGMOID_CLIPPED:
        for i in range(n):
            a[i] = _activation(z[i], SIGMOID_CLIPPED)
    elif kind == SIGMOID:
        for i in range(n):
            a[i] = _activation(z[i], SIGMOID)
    else:
        for i in range(n):
            a[i] = z[i]


@exact_kernel
def _derivative_row(dz, da, z, kind, factor):
    """dz = da * f'(z) along a row, one loop per kind; returns the sum of dz (for db)."""
    n = z.shape[0]
    total = 0.0
    if kind == DRELU:
        for i in range(n):
            dz[i] = da[i] * _derivative(z[i], DRELU, factor)
            total += dz[i]
    elif kind == DSIGMOID_CLIPPED:
        for i in range(n):
            dz[i] = da[i] * _derivative(z[i], DSIGMOID_CLIPPED, factor)
            total += dz[i]
    elif kind == DSIGMOID:
        for i in range(n):
            dz[i] = da[i] * _derivative(z[i], DSIGMOID, factor)
            total += dz[i]
    else:
        for i in range(n):
            dz[i] = da[i] * factor
            total += dz[i]
    return total


# --------------------------------------------------------------------------- tiles
# A layer with at most 4 inputs runs as tiles of up to 4 units: one pass along the
# samples reads each input row once and keeps the 4 x 4 weights in registers, where
# one pass per (input, unit) pair reads and writes the output row n_in + 2 times.
# Measured on the tutorial (1000 samples, float64): a 4 -> 3 layer with its ReLU
# 0.8 us as one tile against 2.5-3.3 us as 18 passes.  The weights must be loaded
# into locals before the loop: read from ``params`` inside it they may alias the
# stores, and LLVM then leaves the loop scalar.  ``TILE_FASTMATH`` drops
# ``reassoc`` from the exact flags: each unit's sum keeps the passes' order over
# the inputs (so the tiles give bitwise the passes' numbers).
TILE_FASTMATH = {"nsz"}


@exact_kernel(fastmath=TILE_FASTMATH)
def _unit(u0, u1, u2, u3, c0, c1, c2, c3, d):
    return (((u0 * c0 + u1 * c1) + u2 * c2) + u3 * c3) + d


@exact_kernel(fastmath=TILE_FASTMATH)
def _units_tile(x0, x1, x2, x3, params, base, in_step, out_step, n_in, g, b0, o, r0, a, relu):
    """Rows r0..r0+g-1 of ``o`` (g <= 4): o_j = (((x0 w0j + x1 w1j) + x2 w2j) + x3 w3j) + b_j,
    with w_qj = params[base + q in_step + j out_step] for q < n_in (<= 4) and rows
    x_q past n_in all zeros (they add exactly 0).  b_j = params[b0 + j], or 0 when
    b0 < 0.  With ``relu`` also a_j = relu(o_j) in rows r0.. of ``a``.

    One loop per (g, relu): a store under a condition inside the loop would make
    LLVM check ``a`` against ``o`` at run time, and fall back to scalar code when
    they are the same array (as for da, where ``a`` is unused).
    """
    n = x0.shape[0]
    c00, c01, c02, c03 = _weights_row(params, base, out_step, 0 < n_in, g)
    c10, c11, c12, c13 = _weights_row(params, base + in_step, out_step, 1 < n_in, g)
    c20, c21, c22, c23 = _weights_row(params, base + 2 * in_step, out_step, 2 < n_in, g)
    c30, c31, c32, c33 = _weights_row(params, base + 3 * in_step, out_step, 3 < n_in, g)
    d0, d1, d2, d3 = _weights_row(params, b0, 1, b0 >= 0, g)
    o0, o1, o2, o3 = o[r0], o[r0 + min(1, g - 1)], o[r0 + min(2, g - 1)], o[r0 + min(3, g - 1)]
    a0, a1, a2, a3 = a[r0], a[r0 + min(1, g - 1)], a[r0 + min(2, g - 1)], a[r0 + min(3, g - 1)]
    if g == 1 and relu:
        for i in range(n):
            v0 = _unit(x0[i], x1[i], x2[i], x3[i], c00, c10, c20, c30, d0)
            o0[i], a0[i] = v0, _activation(v0, RELU)
    elif g == 1:
        for i in range(n):
            o0[i] = _unit(x0[i], x1[i], x2[i], x3[i], c00, c10, c20, c30, d0)
    elif g == 2 and relu:
        for i in range(n):
            u0, u1, u2, u3 = x0[i], x1[i], x2[i], x3[i]
            v0 = _unit(u0, u1, u2, u3, c00, c10, c20, c30, d0)
            v1 = _unit(u0, u1, u2, u3, c01, c11, c21, c31, d1)
            o0[i], o1[i] = v0, v1
            a0[i], a1[i] = _activation(v0, RELU), _activation(v1, RELU)
    elif g == 2:
        for i in range(n):
            u0, u1, u2, u3 = x0[i], x1[i], x2[i], x3[i]
            o0[i] = _unit(u0, u1, u2, u3, c00, c10, c20, c30, d0)
            o1[i] = _unit(u0, u1, u2, u3, c01, c11, c21, c31, d1)
    elif g == 3 and relu:
        for i in range(n):
            u0, u1, u2, u3 = x0[i], x1[i], x2[i], x3[i]
            v0 = _unit(u0, u1, u2, u3, c00, c10, c20, c30, d0)
            v1 = _unit(u0, u1, u2, u3, c01, c11, c21, c31, d1)
            v2 = _unit(u0, u1, u2, u3, c02, c12, c22, c32, d2)
            o0[i], o1[i], o2[i] = v0, v1, v2
            a0[i], a1[i] = _activation(v0, RELU), _activation(v1, RELU)
            a2[i] = _activation(v2, RELU)
    elif g == 3:
        for i in range(n):
            u0, u1, u2, u3 = x0[i], x1[i], x2[i], x3[i]
            o0[i] = _unit(u0, u1, u2, u3, c00, c10, c20, c30, d0)
            o1[i] = _unit(u0, u1, u2, u3, c01, c11, c21, c31, d1)
            o2[i] = _unit(u0, u1, u2, u3, c02, c12, c22, c32, d2)
    elif relu:
        for i in range(n):
            u0, u1, u2, u3 = x0[i], x1[i], x2[i], x3[i]
            v0 = _unit(u0, u1, u2, u3, c00, c10, c20, c30, d0)
            v1 = _unit(u0, u1, u2, u3, c01, c11, c21, c31, d1)
            v2 = _unit(u0, u1, u2, u3, c02, c12, c22, c32, d2)
            v3 = _unit(u0, u1, u2, u3, c03, c13, c23, c33, d3)
            o0[i], o1[i], o2[i], o3[i] = v0, v1, v2, v3
            a0[i], a1[i] = _activation(v0, RELU), _activation(v1, RELU)
            a2[i], a3[i] = _activation(v2, RELU), _activation(v3, RELU)
    else:
        for i in range(n):
            u0, u1, u2, u3 = x0[i], x1[i], x2[i], x3[i]
            o0[i] = _unit(u0, u1, u2, u3, c00, c10, c20, c30, d0)
            o1[i] = _unit(u0, u1, u2, u3, c01, c11, c21, c31, d1)
            o2[i] = _unit(u0, u1, u2, u3, c02, c12, c22, c32, d2)
            o3[i] = _unit(u0, u1, u2, u3, c03, c13, c23, c33, d3)


@exact_kernel
def _weights_row(params, base, step, present, g):
    """(params[base + j step] for j < g, zeros after), or four zeros if not present."""
    if not present:
        return 0.0, 0.0, 0.0, 0.0
    w0 = params[base]
    w1 = params[base + step] if g > 1 else 0.0
    w2 = params[base + 2 * step] if g > 2 else 0.0
    w3 = params[base + 3 * step] if g > 3 else 0.0
    return w0, w1, w2, w3


@exact_kernel
def _gradient_tile(s0, s1, s2, s3, d, j0, g, grads, base, n_out, n_rows):
    """grads[base + q n_out + j] = sum_i s_q[i] d[j0 + j, i] for q < n_rows, j < g
    (<= 4 each): up to 16 dot products in one pass over the samples.  Rows s_q for
    q >= n_rows repeat a real row; their sums are computed and dropped."""
    n = s0.shape[0]
    e0 = d[j0]
    e1 = d[j0 + 1] if g > 1 else e0
    e2 = d[j0 + 2] if g > 2 else e0
    e3 = d[j0 + 3] if g > 3 else e0
    t00 = t01 = t02 = t03 = t10 = t11 = t12 = t13 = 0.0
    t20 = t21 = t22 = t23 = t30 = t31 = t32 = t33 = 0.0
    if g == 1:
        for i in range(n):
            f0 = e0[i]
            t00 += s0[i] * f0
            t10 += s1[i] * f0
            t20 += s2[i] * f0
            t30 += s3[i] * f0
    elif g == 2:
        for i in range(n):
            f0, f1 = e0[i], e1[i]
            u0, u1, u2, u3 = s0[i], s1[i], s2[i], s3[i]
            t00 += u0 * f0
            t01 += u0 * f1
            t10 += u1 * f0
            t11 += u1 * f1
            t20 += u2 * f0
            t21 += u2 * f1
            t30 += u3 * f0
            t31 += u3 * f1
    elif g == 3:
        for i in range(n):
            f0, f1, f2 = e0[i], e1[i], e2[i]
            u0, u1, u2, u3 = s0[i], s1[i], s2[i], s3[i]
            t00 += u0 * f0
            t01 += u0 * f1
            t02 += u0 * f2
            t10 += u1 * f0
            t11 += u1 * f1
            t12 += u1 * f2
            t20 += u2 * f0
            t21 += u2 * f1
            t22 += u2 * f2
            t30 += u3 * f0
            t31 += u3 * f1
            t32 += u3 * f2
    else:
        for i in range(n):
            f0, f1, f2, f3 = e0[i], e1[i], e2[i], e3[i]
            u0, u1, u2, u3 = s0[i], s1[i], s2[i], s3[i]
            t00 += u0 * f0
            t01 += u0 * f1
            t02 += u0 * f2
            t03 += u0 * f3
            t10 += u1 * f0
            t11 += u1 * f1
            t12 += u1 * f2
            t13 += u1 * f3
            t20 += u2 * f0
            t21 += u2 * f1
            t22 += u2 * f2
            t23 += u2 * f3
            t30 += u3 * f0
            t31 += u3 * f1
            t32 += u3 * f2
            t33 += u3 * f3
    _store_sums(grads, base, n_out, g, t00, t01, t02, t03)
    if n_rows > 1:
        _store_sums(grads, base + n_out, n_out, g, t10, t11, t12, t13)
    if n_rows > 2:
        _store_sums(grads, base + 2 * n_out, n_out, g, t20, t21, t22, t23)
    if n_rows > 3:
        _store_sums(grads, base + 3 * n_out, n_out, g, t30, t31, t32, t33)


@exact_kernel
def _store_sums(grads, base, n_out, g, t0, t1, t2, t3):
    grads[base] = t0
    if g > 1:
        grads[base + 1] = t1
    if g > 2:
        grads[base + 2] = t2
    if g > 3:
        grads[base + 3] = t3


@exact_kernel
def _row_or(rows, q, fallback):
    """rows[q] if it exists, else ``fallback`` (a zero row, or a real row to repeat)."""
    return rows[q] if q < rows.shape[0] else fallback


# --------------------------------------------------------------------------- the passes
@exact_kernel
def _transpose_into(x, xT):
    """xT = x.T (x: n samples as rows; xT: feature-major); returns n."""
    n, d = x.shape
    for p in range(d):
        column = xT[p]
        for i in range(n):
            column[i] = x[i, p]
    return n


@exact_kernel
def forward(x, params, table, kinds, zbuf, abuf, xT, zero):
    """z[l] = a[l-1] @ W[l] + b[l]; a[l] = f_l(z[l]) for every layer (x is a[0]).

    ``zbuf``/``abuf``: (sum of widths, n) feature-major; ``xT``: (n_in, n) scratch;
    ``zero``: an n-long scratch row (set to zeros here, read by the tiles).
    """
    n = _transpose_into(x, xT)
    for i in range(n):
        zero[i] = 0.0
    for l in range(table.shape[0]):
        n_in, n_out = table[l, T_IN], table[l, T_OUT]
        w0, b0, r0 = table[l, T_W], table[l, T_B], table[l, T_ROW]
        below = xT if l == 0 else abuf[table[l - 1, T_ROW] : table[l - 1, T_ROW] + n_in]
        kind = kinds[l, 0]
        if n_in <= 4:
            x0, x1 = below[0], _row_or(below, 1, zero)
            x2, x3 = _row_or(below, 2, zero), _row_or(below, 3, zero)
            for j0 in range(0, n_out, 4):
                g = min(4, n_out - j0)
                _units_tile(
                    x0, x1, x2, x3, params, w0 + j0, n_out, 1, n_in, g, b0 + j0,
                    zbuf, r0 + j0, abuf, kind == RELU,
                )  # fmt: skip
            if kind != RELU:
                for j in range(n_out):
                    _activate_row(zbuf[r0 + j], abuf[r0 + j], kind)
            continue
        for j in range(n_out):
            z = zbuf[r0 + j]
            w = params[w0 + j]
            first = below[0]
            for i in range(n):
                z[i] = w * first[i]
            for p in range(1, n_in):
                w = params[w0 + p * n_out + j]
                src = below[p]
                for i in range(n):
                    z[i] += w * src[i]
            b = params[b0 + j]
            for i in range(n):
                z[i] += b
            _activate_row(z, abuf[r0 + j], kind)


@exact_kernel
def backward(
    x, y, yhat, params, table, kinds, factors, zbuf, abuf, xT, dzbuf, dabuf, grads, da_input, zero
):
    """The reference's backward pass with the cross-entropy derivative fused.

    da[L] = -y / clip(yhat, eps) + (1 - y) / clip(1 - yhat, eps); then per layer
    dz = da * f'(z); dW = a_prev^T dz (sum); db = mean(dz, axis=0); da_prev = dz W^T.
    ``da_input`` receives da[0], feature-major (n_in of layer 1, n); ``zero`` is the
    forward's row of zeros; ``x`` (a[0]) is transposed into ``xT`` again, as it may
    have changed since the forward.
    """
    n = _transpose_into(x, xT)
    last = table.shape[0] - 1
    r_last = table[last, T_ROW]
    largest = 0.0
    for j in range(table[last, T_OUT]):
        da = dabuf[r_last + j]
        for i in range(n):
            t = y[i, j]
            largest = max(largest, abs(t * 1.0))  # in float: abs(INT64_MIN) wraps
            p = yhat[i, j]
            da[i] = -t / max(p, _EPS) + (1.0 - t) / max(1.0 - p, _EPS)
    if largest >= _EXACT_LIMIT:
        # Integer targets this large round (or wrap around) differently in numpy's
        # integer arithmetic: the caller redoes the step on the numpy path.
        return False
    for l in range(last, -1, -1):
        n_in, n_out = table[l, T_IN], table[l, T_OUT]
        w0, b0, r0 = table[l, T_W], table[l, T_B], table[l, T_ROW]
        below = xT if l == 0 else abuf[table[l - 1, T_ROW] : table[l - 1, T_ROW] + n_in]
        kind, factor = kinds[l, 1], factors[l]
        for j in range(n_out):
            # f'(z) from z, as the reference's derivative is called on z (not from
            # a = f(z): a user may have changed either in place since the forward).
            total = _derivative_row(dzbuf[r0 + j], dabuf[r0 + j], zbuf[r0 + j], kind, factor)
            grads[b0 + j] = total / n
        dz_rows = dzbuf[r0 : r0 + n_out]
        for p0 in range(0, n_in, 4):
            s0 = below[p0]
            s1, s2 = _row_or(below, p0 + 1, s0), _row_or(below, p0 + 2, s0)
            s3 = _row_or(below, p0 + 3, s0)
            for j0 in range(0, n_out, 4):
                _gradient_tile(
                    s0, s1, s2, s3, dz_rows, j0, min(4, n_out - j0), grads,
                    w0 + p0 * n_out + j0, n_out, min(4, n_in - p0),
                )  # fmt: skip
        target = da_input if l == 0 else dabuf[table[l - 1, T_ROW] : table[l - 1, T_ROW] + n_in]
        if n_out <= 4:
            e0, e1 = dz_rows[0], _row_or(dz_rows, 1, zero)
            e2, e3 = _row_or(dz_rows, 2, zero), _row_or(dz_rows, 3, zero)
            for p0 in range(0, n_in, 4):
                _units_tile(
                    e0, e1, e2, e3, params, w0 + p0 * n_out, 1, n_out, n_out, min(4, n_in - p0),
                    -1, target, p0, target, False,
                )  # fmt: skip
            continue
        for p in range(n_in):
            out = target[p]
            w = params[w0 + p * n_out]
            dz = dzbuf[r0]
            for i in range(n):
                out[i] = dz[i] * w
            for j in range(1, n_out):
                w = params[w0 + p * n_out + j]
                dz = dzbuf[r0 + j]
                for i in range(n):
                    out[i] += dz[i] * w
    return True


@exact_kernel
def sgd_update(params, grads, eta):
    """W -= eta * dW; b -= eta * db over the whole flat buffer."""
    for i in range(params.shape[0]):
        params[i] -= eta * grads[i]
