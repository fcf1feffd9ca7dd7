"""``python -m mlpfast`` subcommands (the README's first command runs ``demo``)."""

import subprocess
import sys

from mlpfast.__main__ import main


def test_demo_reproduces_the_reference_numbers(capsys):
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "iteration 145: loss 664.60120828, accuracy 0.818" in out
    assert "iteration 149: loss 683.61702980, accuracy 0.614" in out
    assert "x faster" in out and "test accuracy" in out


def test_warmup_and_info(capsys):
    assert main(["warmup", "--dtype", "float64"]) == 0
    assert "float64: kernels ready" in capsys.readouterr().out
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "threading" in out and "kernel cache" in out and "numba" in out


def test_help_lists_the_subcommands():
    result = subprocess.run(
        [sys.executable, "-m", "mlpfast", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for command in ("demo", "bench", "warmup", "info"):
        assert command in result.stdout
