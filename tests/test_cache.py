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


def version(root: Path, tag: str) -> Path:
    return root / f"kernels-{tag * 16}"


def test_prune_removes_only_stale_cache_entries(tmp_path):
    now = time.time()
    root = tmp_path
    current = version(root, "c")
    current.mkdir()
    old, recent, unmarked = version(root, "0"), version(root, "1"), version(root, "2")
    for directory in (old, recent, unmarked):
        (directory / "unrolled").mkdir(parents=True)
        (directory / "train.train_epochs-900.py311.nbi").write_bytes(b"x")
    (old / "last-used").touch()
    aged(old / "last-used", 40, now)
    (recent / "last-used").touch()
    aged(recent / "last-used", 5, now)
    aged(unmarked, 300, now)  # no marker: not known to be ours, kept
    # the flat files and unrolled/ folder of releases before version directories
    legacy_old = root / "train.train_epochs-778.py311.1.nbc"
    legacy_new = root / "losses.output_loss_and_delta-49.py311.nbi"
    legacy_unrolled = root / "unrolled"
    (legacy_unrolled / "__pycache__").mkdir(parents=True)
    for path in (
        legacy_unrolled / "mlpfast_unrolled_0123.py",
        legacy_unrolled / ".mlpfast_unrolled_0123.abc.tmp",
        legacy_unrolled / "__pycache__" / "mlpfast_unrolled_0123.cpython-311.pyc",
        legacy_old,
        legacy_new,
    ):
        path.touch()
    aged(legacy_old, 45, now)
    aged(legacy_unrolled, 60, now)
    # not mlpfast's: Python's bytecode, a user's things in a directory they chose
    keep = [root / "train.cpython-311.pyc", root / "notes.nbc", root / "kernels-cuda"]
    keep[0].touch()
    keep[1].touch()
    keep[2].mkdir()
    theirs = root / "theirs" / "unrolled"
    theirs.mkdir(parents=True)
    (theirs / "README").touch()
    link = version(root, "d")
    link.symlink_to(old, target_is_directory=True)  # a link to a stale version: left alone
    for path in [*keep, link]:
        os.utime(path, (now - 400 * DAY, now - 400 * DAY), follow_symlinks=False)

    removed = _config.prune_stale(root, current, now=now)

    assert set(removed) == {old, legacy_old, legacy_unrolled}
    assert not old.exists() and not legacy_old.exists() and not legacy_unrolled.exists()
    for path in (recent, unmarked, legacy_new, *keep, theirs / "README", link):
        assert os.path.lexists(path), path
    assert abs((current / "last-used").stat().st_mtime - now) < 1


def test_prune_keeps_an_unrolled_folder_holding_anything_else(tmp_path):
    now = time.time()
    current = version(tmp_path, "c")
    current.mkdir()
    folder = tmp_path / "unrolled"
    folder.mkdir()
    (folder / "mlpfast_unrolled_0123.py").touch()
    (folder / "README").touch()
    aged(folder, 60, now)
    assert _config.prune_stale(tmp_path, current, now=now) == []
    assert (folder / "README").exists()


def test_another_users_version_directory_moves_the_cache_on(tmp_path, monkeypatch):
    """A shared root where this version's directory cannot be written (here a file
    stands in its way): the next candidate root is used, caching stays on."""
    shared, own = tmp_path / "shared", tmp_path / "own"
    shared.mkdir()
    (shared / f"kernels-{_config.SOURCE_STAMP[:16]}").write_text("not a directory")
    monkeypatch.setattr(_config, "_cache_candidates", lambda: [shared, own])
    root, directory = _config._choose_cache_dir(_config.SOURCE_STAMP)
    assert root == own and directory == own / f"kernels-{_config.SOURCE_STAMP[:16]}"
    assert directory.is_dir()


def test_prune_runs_at_most_once_a_day(tmp_path):
    now = time.time()
    current = version(tmp_path, "c")
    current.mkdir()
    assert _config.prune_stale(tmp_path, current, now=now) == []
    stale = version(tmp_path, "0")
    stale.mkdir()
    (stale / "last-used").touch()
    aged(stale / "last-used", 100, now)
    # marked used an hour ago: no directory listing, nothing removed
    assert _config.prune_stale(tmp_path, current, now=now + 3600) == []
    assert stale.exists()
    assert _config.prune_stale(tmp_path, current, now=now + 1.5 * DAY) == [stale]


def test_prune_survives_an_unreadable_root(tmp_path):
    missing = tmp_path / "gone"
    assert _config.prune_stale(missing, version(missing, "c")) == []


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
