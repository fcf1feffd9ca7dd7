"""The peer-comparison command's logic, on tiny workloads (no timing asserted)."""

import builtins

import numpy as np
import pytest

from mlpfast import bench
from mlpfast.__main__ import main


def test_workloads_match_benchmarks_md():
    tutorial = bench.make_workload("tutorial")
    assert tutorial.X.shape == (1000, 2) and tutorial.batch_size() == 1000
    assert tutorial.epochs == 150 and tutorial.lr == 0.005 and tutorial.dtype == "float64"
    moons = bench.make_workload("moons")
    assert moons.X.shape == (100_000, 2) and moons.batch == 32 and moons.lr == 0.05
    wide = bench.make_workload("wide", scale=0.05)
    assert wide.X.shape == (1000, 784) and wide.batch == 128 and wide.dtype == "float32"
    assert set(np.unique(wide.y)) <= set(range(10))
    with pytest.raises(ValueError, match="unknown workload"):
        bench.make_workload("huge")


def test_flops_per_epoch():
    w = bench.make_workload("tutorial")
    assert w.flops_per_epoch == 6 * 1000 * (2 * 4 + 4 * 3 + 3 * 1)


def test_table_has_every_peer_and_ratios(monkeypatch):
    lines = []
    results, table = bench.run_benchmark(
        ["tutorial"], ["mlpfast", "reference", "sklearn"], "default", 1, 1, 0.05, out=lines.append
    )
    rows = [r for r in results if not r.skipped]
    assert {r.peer for r in rows} == {"mlpfast", "reference", "sklearn"}
    assert all(r.seconds > 0 and np.isfinite(r.loss) for r in rows)
    mlpfast_row = next(line for line in table.splitlines() if "| mlpfast |" in line)
    assert "| 1.00 |" in mlpfast_row
    assert "Large-GEMM rate (numpy 2048x2048) (before and after the table): float64" in table
    assert any("OpenBLAS tuning variables" in line for line in lines)


def test_missing_peer_is_skipped_with_a_reason(monkeypatch):
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    w = bench.make_workload("tutorial", scale=0.05)
    result = bench.measure(w, "torch", "float64", 1, 1)
    assert result.skipped and "torch is not installed" in result.skipped
    table = bench.format_table(
        [bench.measure(w, "mlpfast", "float64", 1, 1), result], {"tutorial": w}, {"float64": 1.0}
    )
    assert "torch skipped" in table


def test_command_line(capsys):
    assert (
        main(
            [
                "bench",
                "--workloads",
                "tutorial",
                "--peers",
                "reference",
                "--repeats",
                "1",
                "--scale",
                "0.05",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| tutorial | float64 | mlpfast |" in out
    assert "| tutorial | float64 | reference |" in out
    with pytest.raises(SystemExit):
        main(["bench", "--peers", "matlab"])


def test_estimator_comparison_runs_both_classifiers():
    results, table = bench.run_benchmark(
        ["synthetic-adam"],
        ["mlpfast", "sklearn", "torch"],
        "default",
        1,
        1,
        0.01,
        out=lambda line: None,
    )
    rows = {r.peer: r for r in results if not r.skipped}
    assert set(rows) == {"mlpfast", "sklearn"}  # torch is not part of this comparison
    assert "torch" not in table
    assert all(r.seconds > 0 and np.isfinite(r.loss) for r in rows.values())
    assert "ms/fit (20 epochs)" in table


def test_peers_take_turns_so_drift_hits_them_alike(monkeypatch):
    order = []

    def fake(name):
        def adapter(w, dtype, threads):
            return (lambda: order.append(name)), (lambda: 0.5)

        return adapter

    monkeypatch.setattr(bench, "_ADAPTERS", {"a": fake("a"), "b": fake("b")})
    w = bench.make_workload("tutorial", scale=0.05)
    results = bench.measure_side_by_side(
        w, ["a", "b", "torch"], "float64", 1, 3, settle=0, min_sample=0
    )
    # each peer's warm-up and calibration run, then round-robin rounds
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert [r.peer for r in results] == ["a", "b", "torch"]
    assert all(r.seconds > 0 and r.loss == 0.5 for r in results[:2])
    assert results[2].skipped  # not an adapter here
    order.clear()
    # A sample repeats a fast run until it lasts min_sample seconds.
    bench.measure_side_by_side(w, ["a"], "float64", 1, 2, settle=0, min_sample=1e-3)
    assert len(order) > 2 + 2 * 2
