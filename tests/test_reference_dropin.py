"""The drop-in ``mlpfast.reference`` against REFERENCE.md and the numpy oracle."""

import copy
import pickle
import weakref

import numpy as np
import pytest
from oracle import (
    ReferenceMLP,
    ref_cross_entropy,
    ref_d_cross_entropy,
    ref_drelu,
    ref_dsigmoid,
    ref_relu,
    ref_sigmoid,
)
from sklearn.datasets import make_circles
from sklearn.metrics import accuracy_score

from mlpfast import reference as R

# REFERENCE.md: (iteration, loss, accuracy) of the tutorial's run.
TABLE = [
    (0, 693.62972747, 0.5),
    (1, 693.62166655, 0.5),
    (100, 691.14411224, 0.5),
    (145, 664.60120828, 0.818),
    (149, 683.61702980, 0.614),
]

USER_FUNCTIONS = (
    ref_relu,
    ref_drelu,
    ref_sigmoid,
    ref_dsigmoid,
    ref_cross_entropy,
    ref_d_cross_entropy,
)
MLPFAST_FUNCTIONS = (R.relu, R.drelu, R.sigmoid, R.dsigmoid, R.cross_entropy, R.d_cross_entropy)


def tutorial_run(mlp_class, functions):
    """The tutorial's demo: the printed loss/accuracy after each of 150 updates."""
    relu, drelu, sigmoid, dsigmoid, cross_entropy, d_cross_entropy = functions
    np.random.seed(0)
    X, y = make_circles(n_samples=1000, factor=0.5, noise=0.1)
    y = y.reshape(-1, 1)
    model = mlp_class(
        [2, 4, 3, 1], [relu, relu, sigmoid], [drelu, drelu, dsigmoid], d_cross_entropy
    )
    model.initialize()
    yhat = model.forward(X)
    printed = [(cross_entropy(y, yhat)[0, 0], accuracy_score(y, yhat > 0.5))]
    for _ in range(150):
        model.backward(y, yhat)
        model.update(0.005)
        yhat = model.forward(X)
        printed.append((cross_entropy(y, yhat)[0, 0], accuracy_score(y, yhat > 0.5)))
    return printed, model


@pytest.mark.parametrize(
    "functions",
    [USER_FUNCTIONS, MLPFAST_FUNCTIONS],
    ids=["user-defined functions", "mlpfast.reference functions"],
)
def test_reproduces_the_reference_table(functions):
    printed, model = tutorial_run(R.mlp, functions)
    assert model._plan, "the tutorial's functions should run on the fused path"
    for iteration, loss, accuracy in TABLE:
        assert printed[iteration][0] == pytest.approx(loss, rel=1e-9, abs=5e-9)
        assert printed[iteration][1] == accuracy


def test_every_printed_number_matches_the_oracle():
    expected, _ = tutorial_run(ReferenceMLP, USER_FUNCTIONS)
    got, _ = tutorial_run(R.mlp, USER_FUNCTIONS)
    for (l1, a1), (l2, a2) in zip(expected, got, strict=True):
        assert l2 == pytest.approx(l1, rel=1e-9)
        assert a1 == a2


def _random_arch(rng):
    depth = rng.integers(1, 4)
    return [int(rng.integers(1, 7)) for _ in range(depth + 1)] + [int(rng.integers(1, 4))]


@pytest.mark.parametrize("seed", range(6))
def test_step_by_step_equals_the_oracle_on_random_architectures(seed):
    rng = np.random.default_rng(seed)
    sizes = _random_arch(rng)
    n_layers = len(sizes) - 1
    acts = [ref_relu] * (n_layers - 1) + [ref_sigmoid]
    ders = [ref_drelu] * (n_layers - 1) + [ref_dsigmoid]
    X = rng.standard_normal((int(rng.integers(1, 60)), sizes[0]))
    y = (rng.random((X.shape[0], sizes[-1])) < 0.5).astype(float)
    ref = ReferenceMLP(sizes, acts, ders, ref_d_cross_entropy)
    fast = R.mlp(sizes, acts, ders, ref_d_cross_entropy)
    ref.initialize(seed)
    fast.initialize(seed)
    for _ in range(4):
        for model in (ref, fast):
            model.forward(X)
            model.backward(y, model.a[-1])
            model.update(0.1)
        for name in ("z", "a", "dz", "dW", "db", "W", "b", "da"):
            for l in range(len(sizes)):
                r, f = getattr(ref, name)[l], getattr(fast, name)[l]
                if r is None:
                    assert f is None, (name, l)
                    continue
                assert f.shape == r.shape, (name, l)
                np.testing.assert_allclose(f, r, rtol=1e-12, atol=1e-15, err_msg=f"{name}[{l}]")
    assert fast._plan


def _tanh_derivative(z):
    return 1 - np.tanh(z) ** 2


def _identity(z):
    return z


def _one(z):
    return np.ones_like(z)


@pytest.mark.parametrize(
    "hidden", [(ref_relu, ref_drelu), (_identity, _one)], ids=["relu", "identity"]
)
def test_every_tile_shape_equals_the_oracle(hidden, rtol=1e-12):
    """Layers of 1-7 units: the kernels' 4-unit tiles with every remainder (1-4
    units, 1-4 inputs padded with zeros), the per-unit passes for more than 4
    inputs, and the fused ReLU next to the separate activation pass."""
    sizes = [5, 1, 2, 3, 4, 7, 2]
    n_layers = len(sizes) - 1
    acts = [hidden[0]] * (n_layers - 1) + [ref_sigmoid]
    ders = [hidden[1]] * (n_layers - 1) + [ref_dsigmoid]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((37, sizes[0]))
    y = (rng.random((37, sizes[-1])) < 0.5).astype(float)
    ref = ReferenceMLP(sizes, acts, ders, ref_d_cross_entropy)
    fast = R.mlp(sizes, acts, ders, ref_d_cross_entropy)
    for model in (ref, fast):
        model.initialize(3)
        for l in range(1, n_layers + 1):  # larger weights: units on both sides of 0
            model.W[l] *= 10
        for _ in range(3):
            model.forward(X)
            model.backward(y, model.a[-1])
            model.update(0.05)
    assert fast._plan
    for name in ("z", "a", "dz", "dW", "db", "W", "b", "da"):
        for l in range(1, n_layers + 1):
            r, f = getattr(ref, name)[l], getattr(fast, name)[l]
            np.testing.assert_allclose(f, r, rtol=rtol, atol=1e-14, err_msg=f"{name}[{l}]")
    np.testing.assert_allclose(fast.da[0], ref.da[0], rtol=rtol, atol=1e-14)


def test_tanh_runs_on_the_numpy_path_exactly():
    """Near +-1, 1 - tanh(z)^2 cancels down to the last bit of tanh, where libm's and
    numpy's differ: a fused tanh derivative came out 30 % off (fuzzing found it).
    So tanh is not fused, and the numbers are the reference's bit for bit."""
    X = np.array([[345.58419206], [345.58419206]])
    y = np.array([[0.12573022], [-0.13210486]])
    functions = [np.tanh, ref_sigmoid], [_tanh_derivative, ref_dsigmoid], ref_d_cross_entropy
    ref, fast = ReferenceMLP([1, 4, 1], *functions), R.mlp([1, 4, 1], *functions)
    for model in (ref, fast):
        model.initialize(1)
        model.forward(X)
        model.backward(y, y)
    assert fast._plan is False
    for l in (1, 2):
        np.testing.assert_array_equal(fast.dW[l], ref.dW[l])


def test_unknown_callables_are_called_as_written():
    calls = []

    def swish(z):
        calls.append("swish")
        return z / (1 + np.exp(-z))

    def dswish(z):
        s = 1 / (1 + np.exp(-z))
        return s + z * s * (1 - s)

    def dmse(y, yhat):
        return 2 * (yhat - y)

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal((30, 1))
    ref = ReferenceMLP([3, 5, 1], [swish, swish], [dswish, dswish], dmse)
    fast = R.mlp([3, 5, 1], [swish, swish], [dswish, dswish], dmse)
    ref.initialize()
    fast.initialize()
    for model in (ref, fast):
        for _ in range(3):
            model.forward(X)
            model.backward(y, model.a[-1])
            model.update(0.01)
    assert fast._plan is False
    assert calls.count("swish") >= 12
    for l in (1, 2):
        np.testing.assert_array_equal(fast.W[l], ref.W[l])


def test_a_corrected_dsigmoid_is_honoured_too():
    """The user's own derivative decides: s(1 - s) gives different numbers than 2 s(1 - s)."""

    def dsigmoid_true(z):
        s = ref_sigmoid(z)
        return s * (1 - s)

    functions = (
        ref_relu,
        ref_drelu,
        ref_sigmoid,
        dsigmoid_true,
        ref_cross_entropy,
        ref_d_cross_entropy,
    )
    expected, _ = tutorial_run(ReferenceMLP, functions)
    got, model = tutorial_run(R.mlp, functions)
    assert model._plan and model._plan[1][-1] == 1.0
    assert got[100][0] == pytest.approx(expected[100][0], rel=1e-9)
    assert got[100][0] != pytest.approx(TABLE[2][1], rel=1e-6)


def test_replaced_weights_are_used_and_updated_in_place():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 2)), (rng.random((20, 1)) < 0.5).astype(float)
    ref = ReferenceMLP(
        [2, 3, 1], [ref_relu, ref_sigmoid], [ref_drelu, ref_dsigmoid], ref_d_cross_entropy
    )
    fast = R.mlp([2, 3, 1], [ref_relu, ref_sigmoid], [ref_drelu, ref_dsigmoid], ref_d_cross_entropy)
    ref.initialize()
    fast.initialize()
    mine = np.full((2, 3), 0.05)
    ref.W[1] = mine.copy()
    fast.W[1] = mine
    for model in (ref, fast):
        model.forward(X)
        model.backward(y, model.a[-1])
        model.update(0.5)
    np.testing.assert_allclose(mine, ref.W[1], rtol=1e-14)
    assert fast.W[1] is mine
    np.testing.assert_allclose(fast.W[2], ref.W[2], rtol=1e-14)


@pytest.mark.parametrize("how", ["slice", "extend"])
def test_weights_replaced_through_any_list_method_are_used(how):
    """Every way to change the lists counts, not only ``W[l] = ...``."""
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((20, 2)), (rng.random((20, 1)) < 0.5).astype(float)
    functions = [ref_relu, ref_sigmoid], [ref_drelu, ref_dsigmoid], ref_d_cross_entropy
    ref, fast = ReferenceMLP([2, 3, 1], *functions), R.mlp([2, 3, 1], *functions)
    ref.initialize()
    fast.initialize()
    mine = np.full((3, 1), -0.2)
    ref.W[2] = mine.copy()
    if how == "slice":
        fast.W[2:3] = [mine]
    else:
        del fast.W[2]
        fast.W.extend([mine])
    for model in (ref, fast):
        for _ in range(2):
            model.forward(X)
            model.backward(y, model.a[-1])
            model.update(0.5)
    assert fast.W[2] is mine
    np.testing.assert_allclose(mine, ref.W[2], rtol=1e-14)
    np.testing.assert_allclose(fast.W[1], ref.W[1], rtol=1e-14)


def test_a_pickled_model_goes_on_training_its_own_weights():
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((25, 2)), (rng.random((25, 1)) < 0.5).astype(float)
    model = R.mlp([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    model.forward(X)
    model.backward(y, model.a[-1])
    model.update(0.5)
    twin = pickle.loads(pickle.dumps(model))
    for m in (model, twin):
        for _ in range(3):
            m.forward(X)
            m.backward(y, m.a[-1])
            m.update(0.5)
    for l in (1, 2):
        np.testing.assert_array_equal(twin.W[l], model.W[l])
        np.testing.assert_array_equal(twin.b[l], model.b[l])
    assert twin._parameters_are_ours()  # still on the fused path, updating what it shows


def test_each_call_returns_fresh_arrays():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 2))
    model = R.mlp([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    first = model.forward(X)
    kept = first.copy()
    model.backward((kept > 0.5).astype(float), first)
    model.update(1.0)
    second = model.forward(X)
    assert second is not first
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(second, first)


def test_arrays_a_user_keeps_are_never_overwritten():
    """The fused path reuses its arrays two calls later, but only those nothing
    outside the model refers to: arrays a user keeps, and views taken of them, keep
    their values whatever the model does next (as the reference's fresh arrays do)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 2))
    y = (rng.random((50, 1)) < 0.5).astype(float)
    functions = [R.relu, R.relu, R.sigmoid], [R.drelu, R.drelu, R.dsigmoid]
    model = R.mlp([2, 4, 3, 1], *functions, R.d_cross_entropy)
    model.initialize()
    kept = []

    def keep(array):
        kept.append((array, array.copy()))

    for step in range(8):
        yhat = model.forward(X)
        if step == 1:
            keep(model.a[-1])
            keep(model.z[1])
        if step == 2:
            keep(model.a[1][:, 0])  # a view of a view: refers to the buffer only
        model.backward(y, yhat)
        if step == 3:
            for array in (model.dW[1], model.db[2], model.da[0], model.dz[2]):
                keep(array)
        if step == 4:
            keep(model.dW[2].ravel())
        model.update(0.5)
    for array, saved in kept:
        np.testing.assert_array_equal(array, saved)


def test_arrays_nobody_keeps_are_recycled(monkeypatch):
    """Without outside references the model alternates between two sets of arrays:
    the tutorial's loop makes no new buffers or views after its second step."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 2))
    y = (rng.random((30, 1)) < 0.5).astype(float)
    model = R.mlp([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    made = []
    for name in ("_new_forward_arrays", "_new_backward_arrays"):
        make = getattr(model, name)
        monkeypatch.setattr(
            model, name, lambda *a, make=make, name=name: made.append(name) or make(*a)
        )
    for _ in range(6):
        yhat = model.forward(X)
        model.backward(y, yhat)
        model.update(0.1)
    assert sorted(made) == ["_new_backward_arrays"] * 2 + ["_new_forward_arrays"] * 2


def _lockstep(scenario):
    """Run ``scenario(model, X, y)`` on the oracle and on the drop-in; return both."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((40, 3))
    y = (rng.random((40, 1)) < 0.5).astype(float)
    models = []
    for cls in (ReferenceMLP, R.mlp):
        functions = [ref_relu, ref_relu, ref_sigmoid], [ref_drelu, ref_drelu, ref_dsigmoid]
        model = cls([3, 4, 3, 1], *functions, ref_d_cross_entropy)
        model.initialize(5)
        scenario(model, X.copy(), y.copy())
        models.append(model)
    return models


def _step(model, X, y, eta=0.5):
    model.forward(X)
    model.backward(y, model.a[-1])
    model.update(eta)


def _swap_z_and_a_out_and_back(m, X, y):
    zs, acts = m.z, m.a
    m.forward(X)
    m.z, m.a = [None] * 4, [None] * 4
    m.forward(2 * X)
    m.z, m.a = zs, acts  # holding the first forward's arrays again
    m.backward(y, m.a[-1])
    m.update(0.5)


def _swap_dW_out_and_back(m, X, y):
    m.forward(X)
    m.backward(y, m.a[-1])
    dW = m.dW
    m.dW = [None] * 4
    m.forward(2 * X)
    m.backward(y, m.a[-1])
    m.dW = dW  # the first backward's gradients again
    m.update(0.5)


def _swap_W_out_and_back(m, X, y):
    keep = m.W
    m.W = [None] * 4
    m.initialize(7)
    m.W = keep  # the arrays of the first initialize, not the second
    _step(m, X, y)


def _share_lists_with_another_model(m, X, y):
    other = type(m)([3, 4, 3, 1], m.activations, m.derivatives, m.lossderiv)
    other.initialize(9)
    other.z = m.z
    m.forward(X)
    other.forward(2 * X)  # writes into m's z list
    m.backward(y, m.a[-1])
    m.update(0.5)


def _shallow_copy(m, X, y):
    twin = copy.copy(m)
    m.forward(X)
    twin.forward(2 * X)
    m.backward(y, m.a[-1])
    m.update(0.5)


def _change_inputs_and_outputs_in_place(m, X, y):
    m.forward(X)
    X *= 1.5  # a[0] is X: the reference's backward reads it now
    np.clip(m.a[-1], 0.3, 0.7, out=m.a[-1])  # yhat, but f'(z) still comes from z
    m.z[2][:] *= 0.5
    m.backward(y, m.a[-1])
    m.update(0.5)


def _assign_other_functions(m, X, y):
    _step(m, X, y)
    m.lossderiv = lambda y, yhat: 2 * (yhat - y)
    m.derivatives = (ref_drelu, ref_drelu, lambda z: ref_dsigmoid(z) / 2)
    _step(m, X, y)


def _fused_off_between_forward_and_backward(m, X, y):
    m.forward(X)
    m.fused = False
    m.backward(y, m.a[-1])
    m.update(0.5)
    m.fused = True
    _step(m, X, y)


def _one_list_for_z_and_a(m, X, y):
    m.z = m.a
    _step(m, X, y)


def _one_list_for_dW_and_db(m, X, y):
    m.forward(X)
    m.backward(y, m.a[-1])
    m.dW = m.db
    m.update(0.5)


def _other_derivatives_between_forward_and_backward(m, X, y):
    m.forward(X)
    m.derivatives = (ref_drelu, ref_drelu, lambda z: ref_dsigmoid(z) / 2)
    m.lossderiv = lambda y, yhat: 2 * (yhat - y)
    m.backward(y, m.a[-1])
    m.update(0.5)


def _pickled_after_replacing_a_weight(m, X, y):
    _step(m, X, y)
    m.W[1] = np.full((3, 4), 0.05)
    twin = pickle.loads(pickle.dumps(m))
    _step(twin, X, y)
    for name in ("W", "b", "dW", "db", "dz"):
        setattr(m, name, getattr(twin, name))


@pytest.mark.parametrize(
    "scenario",
    [
        _swap_z_and_a_out_and_back,
        _swap_dW_out_and_back,
        _swap_W_out_and_back,
        _share_lists_with_another_model,
        _shallow_copy,
        _change_inputs_and_outputs_in_place,
        _assign_other_functions,
        _fused_off_between_forward_and_backward,
        _one_list_for_z_and_a,
        _one_list_for_dW_and_db,
        _other_derivatives_between_forward_and_backward,
        _pickled_after_replacing_a_weight,
    ],
)
def test_what_a_script_does_to_the_model_between_calls_counts(scenario):
    """Whatever a script does between calls (swapping lists, sharing them, changing
    arrays in place, assigning other functions), the drop-in computes what the
    reference computes."""
    ref, fast = _lockstep(scenario)
    for name in ("W", "b", "dW", "db", "dz"):
        for l in range(1, 4):
            np.testing.assert_allclose(
                getattr(fast, name)[l], getattr(ref, name)[l], rtol=1e-12, atol=1e-15
            )


def test_a_shortened_list_fails_as_in_the_reference():
    for cls in (ReferenceMLP, R.mlp):
        model = cls(
            [2, 3, 3, 1],
            [R.relu, R.relu, R.sigmoid],
            [R.drelu] * 2 + [R.dsigmoid],
            R.d_cross_entropy,
        )
        model.initialize()
        del model.W[3:]
        with pytest.raises(IndexError):
            model.forward(np.ones((5, 2)))


def test_a_view_of_a_weight_unpickled_with_protocol_5_keeps_following_it():
    """Protocol 5 unpickles arrays that do not own their data: a view taken of one
    refers to its base, which must count as holding the weight."""
    rng = np.random.default_rng(14)
    X, y = rng.standard_normal((25, 2)), (rng.random((25, 1)) < 0.5).astype(float)
    model = R.mlp([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    model = pickle.loads(pickle.dumps(model, protocol=5))
    W1T = model.W[1].T
    _step(model, X, y)
    np.testing.assert_array_equal(W1T, model.W[1].T)


def test_reshaping_x_between_forward_and_backward_fails_as_in_the_reference():
    X = np.random.default_rng(15).standard_normal((8, 2))
    outcomes = []
    for cls in (ReferenceMLP, R.mlp):
        model = cls([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
        model.initialize()
        Xc = X.copy()
        yhat = model.forward(Xc)
        Xc.shape = (4, 4)
        try:
            model.backward(np.ones((8, 1)), yhat)
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes[0] == outcomes[1] != "ok"


def test_weakly_referenced_arrays_are_not_recycled():
    model = R.mlp([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    X = np.random.default_rng(12).standard_normal((20, 2))
    watched = weakref.ref(model.forward(X))
    first = watched().copy()
    model.forward(2 * X)
    model.forward(3 * X)
    assert watched() is None or np.array_equal(watched(), first)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_keeps_arrays_kept_with_the_model(protocol):
    """Weights pickled along with the model stay its weights (as with the
    reference), and are trained in place."""
    rng = np.random.default_rng(13)
    X, y = rng.standard_normal((25, 2)), (rng.random((25, 1)) < 0.5).astype(float)
    model = R.mlp([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    _step(model, X, y)
    twin, W1 = pickle.loads(pickle.dumps((model, model.W[1]), protocol=protocol))
    assert W1 is twin.W[1]
    for m in (model, twin):
        _step(m, X, y)
    assert W1 is twin.W[1]
    np.testing.assert_allclose(W1, model.W[1], rtol=1e-12)  # (numpy path: W1 is held)


def test_the_reference_asserts():
    f = [R.relu, R.sigmoid]
    with pytest.raises(AssertionError):
        R.mlp([2, 3, 1], f, [R.drelu], R.d_cross_entropy)
    with pytest.raises(AssertionError):
        R.mlp([2, 3], f, f, R.d_cross_entropy)
    with pytest.raises(AssertionError):
        R.mlp([2, 3.0, 1], f, f, R.d_cross_entropy)
    with pytest.raises(AssertionError):
        R.mlp([2, 0, 1], f, f, R.d_cross_entropy)
    model = R.mlp([2, 3, 1], f, [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    yhat = model.forward(np.zeros((4, 2)))
    with pytest.raises(AssertionError):
        model.backward(np.zeros((4, 2)), yhat)
    with pytest.raises(AssertionError):
        model.backward(np.zeros((3, 1)), yhat)


def test_the_six_functions_match_their_definitions(rng):
    z = rng.standard_normal((50, 3)) * 300
    np.testing.assert_array_equal(R.sigmoid(z), ref_sigmoid(z))
    np.testing.assert_array_equal(R.dsigmoid(z), ref_dsigmoid(z))
    np.testing.assert_array_equal(R.relu(z), ref_relu(z))
    np.testing.assert_array_equal(R.drelu(z), ref_drelu(z))
    y = (rng.random((50, 1)) < 0.5).astype(float)
    p = rng.random((50, 1))
    p[0] = 0.0
    p[1] = 1.0
    np.testing.assert_array_equal(R.cross_entropy(y, p), ref_cross_entropy(y, p))
    assert R.cross_entropy(y, p).shape == (1, 1)
    np.testing.assert_array_equal(R.d_cross_entropy(y, p), ref_d_cross_entropy(y, p))


def test_unfusable_input_falls_back_to_numpy():
    model = R.mlp([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    ref = ReferenceMLP([2, 3, 1], [R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy)
    model.initialize()
    ref.initialize()
    x = [[0.5, -1.0], [2.0, 0.1]]  # a list, as numpy's @ accepts
    np.testing.assert_array_equal(model.forward(np.asarray(x)), ref.forward(np.asarray(x)))
    with pytest.raises(ValueError):
        model.forward(np.zeros((2, 5)))  # wrong width: numpy's own matmul error
