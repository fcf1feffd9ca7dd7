"""Network.save/load (issue 6, persistence): lossless, resumable, atomic, and strict
about damaged files."""

import json
import os
import stat
import warnings
import zipfile

import numpy as np
import pytest

import mlpfast
from mlpfast import Network
from mlpfast import persistence as P
from mlpfast._threads import max_threads

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]


def data(n=120, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] * X[:, 1] > 0).astype(float)


def make(dtype="float32", seed=0, n_threads=1, sizes=(4, 6, 5, 1)):
    return Network(
        list(sizes),
        ["tanh", "relu", "sigmoid"],
        "binary_crossentropy",
        dtype=dtype,
        seed=seed,
        n_threads=n_threads,
    )


def assert_same_network(a, b):
    assert a.layer_sizes == b.layer_sizes
    assert a.activations == b.activations
    assert a.loss_name == b.loss_name
    assert a.dtype == b.dtype and b.params.dtype == a.dtype
    assert a.seed == b.seed
    assert a.n_threads == b.n_threads
    np.testing.assert_array_equal(a.params, b.params)
    assert a._state.dtype == b._state.dtype
    np.testing.assert_array_equal(a._state, b._state)
    assert a._optimizer == b._optimizer
    np.testing.assert_array_equal(a._counters, b._counters)
    assert a._shuffle_seed == b._shuffle_seed
    assert a.history == b.history
    for w, bias in zip(b.coefs, b.intercepts, strict=True):  # views into the loaded buffer
        assert np.shares_memory(w, b.params) and np.shares_memory(bias, b.params)


def rewrite(path, meta=None, checksum="recompute", **arrays):
    """Re-save ``path`` with some metadata fields or arrays replaced.  ``checksum``:
    'recompute' (a consistent, tampered file), 'keep' (the old one), or a string."""
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    fields = json.loads(str(members["meta"]))
    fields.update(meta or {})
    meta_json = json.dumps(fields, sort_keys=True)
    members["meta"] = np.array(meta_json)
    members.update(arrays)
    if checksum == "recompute":
        members["checksum"] = np.array(P._checksum(meta_json, members))
    elif checksum != "keep":
        members["checksum"] = np.array(checksum)
    os.remove(path)
    np.savez(path, **members)


@pytest.fixture
def saved(tmp_path):
    X, y = data()
    net = make(dtype="float64")
    net.fit(X, y, epochs=2, optimizer="adam", lr=0.01, seed=7)
    path = tmp_path / "net.npz"
    net.save(path)
    return net, path


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_round_trip_keeps_everything(tmp_path, dtype, optimizer):
    X, y = data()
    net = make(dtype=dtype)
    net.fit(X, y, epochs=2, optimizer=optimizer, lr=0.05, seed=3)
    net.save(tmp_path / "m.npz")
    loaded = Network.load(tmp_path / "m.npz")
    assert_same_network(net, loaded)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


def test_round_trip_of_an_untrained_network_without_seed(tmp_path):
    net = Network([3, 2], "softmax", "categorical_crossentropy", seed=None)
    assert net._optimizer is None and net._shuffle_seed is None and net.seed is None
    P.save(net, str(tmp_path / "fresh.npz"))
    assert_same_network(net, P.load(str(tmp_path / "fresh.npz")))


def test_round_trip_after_gradients_and_update(tmp_path, rng):
    net = Network([3, 4, 2], ["elu", "identity"], "mse", dtype="float64", seed=5)
    X, Y = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    net.gradients(X, Y)
    net.update(0.1)
    net.save(tmp_path / "g")
    assert_same_network(net, Network.load(tmp_path / "g"))


@pytest.mark.parametrize(
    "optimizer,schedule",
    [
        ("sgd", "invscaling"),
        ("momentum", "constant"),
        ("nesterov", "invscaling"),
        ("adam", "constant"),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resuming_after_load_equals_never_stopping(tmp_path, optimizer, schedule, dtype):
    X, y = data(n=150)
    kwargs = dict(
        batch_size=16, lr=0.05, optimizer=optimizer, lr_schedule=schedule, alpha=1e-3, shuffle=True
    )
    straight = make(dtype=dtype, seed=11)
    losses = straight.fit(X, y, epochs=5, seed=21, **kwargs)
    resumed = make(dtype=dtype, seed=11)
    first = resumed.fit(X, y, epochs=2, seed=21, **kwargs)
    resumed.save(tmp_path / "half.npz")
    del resumed
    loaded = Network.load(tmp_path / "half.npz")
    # No seed passed now: the saved shuffle seed continues the shuffles.
    rest = loaded.fit(X, y, epochs=3, **kwargs)
    np.testing.assert_array_equal(loaded.params, straight.params)
    np.testing.assert_array_equal(loaded._state, straight._state)
    np.testing.assert_array_equal(loaded._counters, straight._counters)
    np.testing.assert_array_equal(np.concatenate([first, rest]), losses)
    assert loaded.history == straight.history


@pytest.mark.skipif(max_threads() < 2, reason="needs 2 Numba threads")
def test_resuming_with_several_threads_is_bitwise_too(tmp_path, rng):
    # Large enough for several row blocks per minibatch and a parallel update.
    sizes = [64, 256, 64, 3]
    X = rng.standard_normal((256, 64))
    y = rng.integers(0, 3, 256)
    kwargs = dict(batch_size=64, lr=0.01, optimizer="momentum", seed=4)

    def fresh():
        return Network(
            sizes,
            ["relu", "tanh", "softmax"],
            "categorical_crossentropy",
            dtype="float64",
            seed=2,
            n_threads=2,
        )

    straight = fresh()
    straight.fit(X, y, epochs=3, **kwargs)
    resumed = fresh()
    resumed.fit(X, y, epochs=1, **kwargs)
    resumed.save(tmp_path / "t.npz")
    loaded = Network.load(tmp_path / "t.npz")
    assert loaded.n_threads == 2
    loaded.fit(X, y, epochs=2, **kwargs)
    np.testing.assert_array_equal(loaded.params, straight.params)


# ----------------------------------------------------------------------------- the file
def test_the_file_is_a_versioned_npz_without_pickle(saved):
    net, path = saved
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"meta", "checksum", "params", "state", "counters", "history"}
        arrays = {k: z[k] for k in z.files}
    assert all(a.dtype != object for a in arrays.values())
    meta = json.loads(str(arrays["meta"]))
    assert meta["format"] == P.FORMAT == "mlpfast.network"
    assert meta["format_version"] == P.FORMAT_VERSION
    assert meta["mlpfast_version"] == mlpfast.__version__
    assert meta["layer_sizes"] == list(net.layer_sizes)
    assert meta["activations"] == list(net.activations)
    assert (meta["loss"], meta["dtype"], meta["seed"]) == ("binary_crossentropy", "float64", 0)
    assert (meta["n_threads"], meta["optimizer"], meta["shuffle_seed"]) == (1, "adam", 7)
    assert arrays["params"].dtype == np.float64 and arrays["state"].shape == (2, net.params.size)
    np.testing.assert_array_equal(arrays["counters"], net._counters)
    assert arrays["counters"].dtype == np.int64
    np.testing.assert_array_equal(arrays["history"], net.history)
    with zipfile.ZipFile(path) as zf:  # stored, like np.savez
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}


def test_suffix_is_added_like_np_savez(tmp_path):
    net = make()
    written = P.save(net, tmp_path / "model")
    assert written == str(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == ["model.npz"]
    # load finds it with or without the suffix; an explicit other suffix is kept.
    assert_same_network(net, Network.load(tmp_path / "model"))
    assert_same_network(net, Network.load(str(tmp_path / "model.npz")))
    assert P.save(net, str(tmp_path / "model.npz")) == str(tmp_path / "model.npz")
    assert P.save(net, tmp_path / "x.bin") == str(tmp_path / "x.bin.npz")


def test_bad_path_types_are_type_errors(tmp_path):
    net = make()
    for bad in (None, 3, ["a"], object()):
        with pytest.raises(TypeError, match="path"):
            P.save(net, bad)
        with pytest.raises(TypeError, match="path"):
            P.load(bad)
    with pytest.raises(TypeError, match="Network"):
        P.save("not a network", tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        Network.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "no" / "such" / "dir" / "m.npz")


def test_overwrite_keeps_permissions_and_replaces_through_symlinks(tmp_path):
    net = make()
    path = tmp_path / "m.npz"
    net.save(path)
    os.chmod(path, 0o640)
    net.fit(*data(), epochs=1)
    net.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    link = tmp_path / "link.npz"
    os.symlink(path, link)
    net.fit(*data(), epochs=1)
    net.save(link)
    assert os.path.islink(link)
    assert_same_network(net, Network.load(path))


# ----------------------------------------------------------------------------- atomicity
class Boom(Exception):
    pass


def boom(*args, **kwargs):
    raise Boom


@pytest.mark.parametrize("where", ["mid-write", "fsync", "replace"])
def test_a_crash_mid_save_keeps_the_old_file(saved, monkeypatch, where):
    old, path = saved
    before = path.read_bytes()
    newer = Network.load(path)
    newer.fit(*data(), epochs=3, optimizer="adam")
    if where == "mid-write":
        real_savez = np.savez

        def savez(file, **arrays):  # write part of the archive, then die
            real_savez(file, **{k: arrays[k] for k in list(arrays)[:3]})
            raise Boom

        monkeypatch.setattr(P.np, "savez", savez)
    elif where == "fsync":
        monkeypatch.setattr(P.os, "fsync", boom)
    else:
        monkeypatch.setattr(P.os, "replace", boom)
    with pytest.raises(Boom):
        newer.save(path)
    monkeypatch.undo()
    assert os.listdir(path.parent) == [path.name], "no temporary file may be left"
    assert path.read_bytes() == before
    assert_same_network(old, Network.load(path))


def test_a_keyboard_interrupt_mid_save_keeps_the_old_file(saved, monkeypatch):
    old, path = saved

    def savez(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(P.np, "savez", savez)
    with pytest.raises(KeyboardInterrupt):
        make().save(path)
    monkeypatch.undo()
    assert os.listdir(path.parent) == [path.name]
    assert_same_network(old, Network.load(path))


def test_save_syncs_the_data_before_renaming(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(P.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(
        P.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))
    )
    make().save(tmp_path / "m.npz")
    assert events == ["fsync", "replace", "fsync"]  # the file, the rename, the directory


# ----------------------------------------------------------------------------- damage
def test_truncated_files_are_value_errors(saved):
    net, path = saved
    blob = path.read_bytes()
    for cut in sorted(
        {0, 1, 4, 30, 100, len(blob) // 3, len(blob) // 2, len(blob) - 22, len(blob) - 1}
    ):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="not a readable mlpfast network file"):
            Network.load(path)


def test_flipped_bytes_in_the_stored_parameters_are_detected(saved):
    net, path = saved
    blob = bytearray(path.read_bytes())
    for name, array in (("params", net.params), ("state", net._state)):
        start = bytes(blob).find(array.tobytes())
        assert start > 0, name
        damaged = bytearray(blob)
        damaged[start + array.nbytes // 2] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(P.NetworkFileError):  # the zip CRC or the SHA-256
            Network.load(path)


@pytest.mark.parametrize("member", ["params", "state", "counters", "history"])
def test_silent_corruption_with_a_valid_zip_fails_the_checksum(saved, member):
    # The zip's own CRC is recomputed (as by a tool that rewrote the archive), so
    # only the SHA-256 over the contents can notice the change.
    net, path = saved
    with np.load(path) as z:
        array = z[member].copy()
    array.reshape(-1).view(np.uint8)[array.nbytes // 2] ^= 0x01
    rewrite(path, checksum="keep", **{member: array})
    with pytest.raises(ValueError, match="corrupted: its checksum does not match"):
        Network.load(path)


def test_changed_metadata_fails_the_checksum(saved):
    _, path = saved
    rewrite(path, meta={"seed": 1}, checksum="keep")
    with pytest.raises(P.NetworkFileError, match="checksum"):
        Network.load(path)


@pytest.mark.parametrize(
    "meta,message",
    [
        ({"format_version": 2}, "format version 2, .* reads version 1; upgrade mlpfast"),
        ({"format_version": 0}, "format version 0"),
        ({"format_version": "1"}, "format version '1'"),
        ({"format": "something.else"}, "format 'something.else'"),
    ],
)
def test_wrong_format_or_version_is_a_clear_error(saved, meta, message):
    _, path = saved
    rewrite(path, meta=meta)
    with pytest.raises(P.NetworkFileError, match=message):
        Network.load(path)


@pytest.mark.parametrize(
    "meta,arrays,message",
    [
        ({"layer_sizes": [4, 6, 5, 2]}, {}, "params has dtype float64 and shape"),
        ({"layer_sizes": [4, 10**9, 10**9, 1]}, {}, "params has dtype"),  # no huge allocation
        ({"layer_sizes": [4, -6, 5, 1]}, {}, "params"),
        ({"layer_sizes": "4,6,5,1"}, {}, "layer_sizes"),
        ({"layer_sizes": [4.0, 6, 5, 1]}, {}, "layer_sizes"),
        ({"dtype": "float32"}, {}, "params has dtype float64"),
        ({"dtype": "object"}, {}, "dtype 'object'"),
        ({"activations": ["tanh", "relu"]}, {}, "3 layers need 3 activations"),
        ({"activations": ["tanh", "relu", "softmax"]}, {}, "softmax"),
        ({"activations": [1, 2, 3]}, {}, "activations"),
        ({"loss": "hinge"}, {}, "unknown loss 'hinge'"),
        ({"loss": None}, {}, "loss must be a string"),
        ({"seed": -1}, {}, "seed must be >= 0"),
        ({"seed": 1.5}, {}, "seed must be an int"),
        ({"n_threads": 0}, {}, "n_threads 0"),
        ({"n_threads": "2"}, {}, "n_threads '2'"),
        ({"optimizer": "rmsprop"}, {}, "unknown optimizer 'rmsprop'"),
        ({"optimizer": "momentum"}, {}, "optimizer 'momentum' needs float64 of shape \\(1,"),
        ({"optimizer": None}, {}, "shape \\(0, "),
        ({"shuffle_seed": -5}, {}, "shuffle_seed"),
        ({"shuffle_seed": 2**64}, {}, "shuffle_seed"),
        ({}, {"params": np.zeros(3)}, "params has dtype float64 and shape \\(3,\\)"),
        ({}, {"params": np.zeros((71, 1))}, "params"),
        ({}, {"state": np.zeros((2, 71), np.float32)}, "state has dtype float32"),
        ({}, {"state": np.zeros((3, 71))}, "optimizer state"),
        ({}, {"counters": np.zeros(3, np.int32)}, "counters"),
        ({}, {"counters": np.array([1, -1, 0])}, "counters"),
        ({}, {"counters": np.zeros(4, np.int64)}, "counters"),
        ({}, {"history": np.zeros((2, 1))}, "history"),
        ({}, {"history": np.array(["a"])}, "history"),
    ],
)
def test_tampered_but_consistent_files_are_validated(saved, meta, arrays, message):
    net, path = saved
    assert net.params.size == 71
    rewrite(path, meta=meta, **arrays)  # with a matching checksum
    with pytest.raises(P.NetworkFileError, match=message):
        Network.load(path)


def test_structural_damage_is_a_clear_error(saved, tmp_path):
    net, path = saved
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    cases = {
        "extra member": dict(members, extra=np.zeros(1)),
        "missing member": {k: v for k, v in members.items() if k != "history"},
        "no meta": {k: v for k, v in members.items() if k != "meta"},
        "meta not a string": dict(members, meta=np.zeros(3)),
        "meta not JSON": dict(members, meta=np.array("{not json")),
        "meta not an object": dict(members, meta=np.array("[1, 2]")),
        "checksum not a string": dict(members, checksum=np.zeros(2)),
    }
    for content in cases.values():
        np.savez(path, **content)
        with pytest.raises(P.NetworkFileError):
            Network.load(path)
    np.savez_compressed(path, **members)
    with pytest.raises(P.NetworkFileError, match="compressed"):
        Network.load(path)
    np.save(tmp_path / "bare.npy", net.params)
    with pytest.raises(P.NetworkFileError, match="single array"):
        Network.load(tmp_path / "bare.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(P.NetworkFileError, match="pickle"):
        Network.load(tmp_path / "objects.npy")
    (tmp_path / "pickle.npz").write_bytes(b"\x80\x04K\x01.")  # pickle of 1
    with pytest.raises(P.NetworkFileError):
        Network.load(tmp_path / "pickle.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(P.NetworkFileError):
        Network.load(tmp_path / "text.npz")
    with pytest.raises(OSError):  # a directory is not a damaged file
        Network.load(tmp_path)


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(saved):
    # A consistent zip (valid CRCs) whose 'history' member's .npy header claims
    # 10**13 float64: reading it would try to allocate 80 TB.
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        raw = {name: zf.read(name) for name in zf.namelist()}
    n = len(Network.load(path).history)
    old, new = f"'shape': ({n},)".encode(), b"'shape': (10000000000000,)"
    header_end = raw["history.npy"].index(b"\n")
    header = raw["history.npy"][:header_end].replace(old, new)
    assert header.endswith(b" " * (len(new) - len(old)))
    header = header[:header_end]  # drop padding: the header keeps its length
    raw["history.npy"] = header + raw["history.npy"][header_end:]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, content in raw.items():
            zf.writestr(name, content)
    with pytest.raises(P.NetworkFileError, match="claims 80000000000000 bytes"):
        Network.load(path)


def test_a_file_from_a_big_endian_machine_loads(saved):
    net, path = saved
    rewrite(
        path,
        params=net.params.astype(">f8"),
        state=net._state.astype(">f8"),
        counters=net._counters.astype(">i8"),
        history=np.asarray(net.history, dtype=">f8"),
    )
    loaded = Network.load(path)
    assert loaded.params.dtype == np.float64 and loaded.params.dtype.isnative
    assert_same_network(net, loaded)


def test_absurd_metadata_is_a_clear_error(saved):
    _, path = saved
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    for meta in ("[" * 100_000, '{"format": "mlpfast.network", "format_version": 1}'):
        members["meta"] = np.array(meta)
        members["checksum"] = np.array(P._checksum(meta, members))
        np.savez(path, **members)
        with pytest.raises(P.NetworkFileError):
            Network.load(path)


def test_more_threads_than_available_are_capped_with_a_warning(saved):
    _, path = saved
    rewrite(path, meta={"n_threads": max_threads() + 3})
    with pytest.warns(RuntimeWarning, match="n_threads"):
        net = Network.load(path)
    assert net.n_threads == max_threads()


def test_estimators_pickle_and_joblib_dump(tmp_path):
    estimators = pytest.importorskip("mlpfast.estimators")
    import pickle

    joblib = pytest.importorskip("joblib")
    X, y = data()
    for model in (
        estimators.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0),
        estimators.MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter reached: ConvergenceWarning
            model.fit(X, y)
        expected = model.predict(X)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X), expected)
        joblib.dump(model, tmp_path / "m.joblib")
        np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict(X), expected)
