"""Where compiled kernels are cached, and what is removed from there."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlpfast
from mlpfast import _config

DAY = 86400.0
PACKAGE = Path(mlpfast.__file__).resolve().parent


def aged(path: Path, days: float, now: float) -> Path:
    os.utime(path, (now - days * DAY, now - days * DAY))
    return path


def test_prune_removes_only_stale_cache_entries(tmp_path):
    now = time.time()
    root = tmp_path
    current = root / "kernels-current"
    current.mkdir()
    old, recent, unmarked = (root / f"kernels-{n}" for n in ("old", "recent", "unmarked"))
    for version in (old, recent, unmarked):
        (version / "unrolled").mkdir(parents=True)
        (version / "train.train_epochs-900.py311.nbi").write_bytes(b"x")
    (old / "last-used").touch()
    aged(old / "last-used", 40, now)
    (recent / "last-used").touch()
    aged(recent / "last-used", 5, now)
    aged(unmarked, 31, now)  # a version directory without marker: its own mtime
    legacy_old = root / "train.train_epochs-778.py311.1.nbc"  # flat, before versions
    legacy_old.touch()
    aged(legacy_old, 45, now)
    legacy_new = root / "train.train_epochs-778.py311.nbi"
    legacy_new.touch()
    legacy_unrolled = root / "unrolled"
    legacy_unrolled.mkdir()
    (legacy_unrolled / "mlpfast_unrolled_0123.py").write_text("")
    aged(legacy_unrolled, 60, now)
    # Python's bytecode and anything else in the root are not the cache's to remove
    pyc = root / "train.cpython-311.pyc"
    pyc.touch()
    aged(pyc, 400, now)
    other = root / "something-else"
    other.mkdir()
    aged(other, 400, now)

    removed = _config.prune_stale(root, current, now=now)

    assert set(removed) == {old, unmarked, legacy_old, legacy_unrolled}
    assert not old.exists() and not unmarked.exists() and not legacy_old.exists()
    assert recent.exists() and legacy_new.exists() and pyc.exists() and other.exists()
    assert abs((current / "last-used").stat().st_mtime - now) < 1


def test_prune_runs_at_most_once_a_day(tmp_path):
    now = time.time()
    current = tmp_path / "kernels-current"
    current.mkdir()
    assert _config.prune_stale(tmp_path, current, now=now) == []
    stale = tmp_path / "kernels-stale"
    stale.mkdir()
    aged(stale, 100, now)
    # marked used an hour ago: no directory listing, nothing removed
    assert _config.prune_stale(tmp_path, current, now=now + 3600) == []
    assert stale.exists()
    assert _config.prune_stale(tmp_path, current, now=now + 1.5 * DAY) == [stale]


def test_prune_survives_an_unreadable_root(tmp_path):
    missing = tmp_path / "gone"
    assert _config.prune_stale(missing, missing / "kernels-x") == []


def test_a_version_caches_in_its_own_directory(tmp_path):
    """Kernels compiled in a process land in ``kernels-<stamp>`` under the root."""
    code = (
        "import numpy as np\n"
        "from mlpfast import _config\n"
        "from mlpfast._kernels.optimizers import sumsq_range\n"
        "assert sumsq_range(np.ones(3), 0, 3) == 3.0\n"
        "print(_config.CACHE_ROOT)\n"
        "print(_config.CACHE_DIR)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    root, directory = Path(out[0]), Path(out[1])
    assert root == tmp_path / "mlpfast"
    assert directory == root / f"kernels-{_config.SOURCE_STAMP[:16]}"
    assert (directory / "last-used").exists()
    assert any(p.name.startswith("optimizers.sumsq_range") for p in directory.glob("*.nbi"))
    assert not list(root.glob("*.nbi")), "nothing is cached outside the version directory"


def test_a_read_only_install_caches_in_the_user_directory(tmp_path):
    """A package whose own ``__pycache__`` cannot be created (here: a file stands
    where the directory would be; chmod does not stop root) caches under
    ``$MLPFAST_CACHE_DIR``, and a second process loads from there."""
    install = tmp_path / "site"
    shutil.copytree(PACKAGE, install / "mlpfast", ignore=shutil.ignore_patterns("__pycache__"))
    (install / "mlpfast" / "_kernels" / "__pycache__").write_text("not a directory")
    user_cache = tmp_path / "user-cache"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(install), MLPFAST_CACHE_DIR=str(user_cache), NUMBA_DEBUG_CACHE="1")
    code = (
        "import numpy as np, mlpfast\n"
        "from mlpfast import _config\n"
        "from mlpfast._kernels.optimizers import sumsq_range\n"
        f"assert mlpfast.__file__.startswith({str(install)!r})\n"
        "sumsq_range(np.ones(3), 0, 3)\n"
        "print('DIR', _config.CACHE_DIR)\n"
    )
    runs = [
        # (run from tmp_path: ``python -c`` puts the working directory first on sys.path)
        subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    directory = Path(runs[0].split("DIR ")[1].strip())
    assert directory.parent == user_cache
    assert any(p.name.startswith("optimizers.sumsq_range") for p in directory.glob("*.nbi"))
    assert "data saved" in runs[0]
    assert "data loaded" in runs[1] and "data saved" not in runs[1]
