"""Every script in examples/ runs, with small settings, in a fresh process.

A new example needs an entry in EXAMPLES (test_every_example_is_listed fails
until it has one).  An example that needs a module not written yet is skipped
only while that module is missing.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"

# script -> (small-settings arguments, modules it needs, text its output must contain)
EXAMPLES = {
    "tutorial.py": (["--iterations", "5"], [], "per iteration: reference numpy"),
    "digits_classifier.py": (["--epochs", "3"], ["mlpfast.estimators"], "test accuracy"),
    "regression.py": (["--quick"], ["mlpfast.estimators"], "Poisson: 'exp' output"),
    "peer_comparison.py": (["--quick"], ["mlpfast.bench"], "| tutorial | float64 | mlpfast |"),
    "loss_curves.py": (
        ["--quick", "--output", "curves.png"],
        ["mlpfast.estimators", "matplotlib"],
        "wrote curves.png",
    ),
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES_DIR.glob("*.py")) == sorted(EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(script, tmp_path):
    args, needs, expected = EXAMPLES[script]
    for module in needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{script} needs {module}, which is not there yet")
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    assert expected in done.stdout
    if script == "loss_curves.py":
        assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
