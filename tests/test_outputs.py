"""Files probmix writes: atomic replacement, kept permissions, symlinks followed, stale
temporaries removed, and a CLI output folder that never mixes two runs (issue 17, items 2, 3).
"""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import probmix
from probmix.cli import app as cli
from probmix.cli.outfolder import MANIFEST
from probmix.io.atomic import TEMP_SUFFIX, replaced

X, _ = probmix.three_clusters(40, seed=2)


def _csv(path):
    path.write_text("a,b\n" + "\n".join(f"{u!r},{v!r}" for u, v in X.tolist()) + "\n")
    return path


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _temporaries(folder):
    return [n for n in os.listdir(folder) if n.endswith((TEMP_SUFFIX, ".tmp"))]


# ----------------------------------------------------------------------------- CLI folder


def test_a_second_run_removes_what_the_first_wrote_and_nothing_else(tmp_path, capsys):
    data, out = _csv(tmp_path / "d.csv"), tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, "fit", data, "-k", 3, "--engine", "mcmc", "--method", "gibbs",
                        "--draws", 20, "--out", out, "--quiet")
    assert code == 0, err
    first = json.loads((out / MANIFEST).read_text())["files"]
    assert {"arviz.nc", "trace.png", "uncertainty.png", "labels.csv"} <= set(first)
    code, printed, err = _run(capsys, "fit", data, "-k", 3, "--out", out, "--quiet")
    assert code == 0, err
    second = json.loads((out / MANIFEST).read_text())["files"]
    assert set(os.listdir(out)) == set(second) | {MANIFEST, "notes.txt"}
    assert not {"arviz.nc", "trace.png", "uncertainty.png"} & set(os.listdir(out))
    assert "removed the previous run's arviz.nc" in printed
    assert (out / "notes.txt").read_text() == "mine"  # not probmix's: never touched


def test_a_manifest_cannot_make_probmix_delete_outside_the_folder(tmp_path, capsys):
    data, out = _csv(tmp_path / "d.csv"), tmp_path / "o"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / MANIFEST).write_text(json.dumps({"files": ["../victim.txt", "/etc/passwd", "..", 3]}))
    code, _, err = _run(capsys, "fit", data, "-k", 2, "--out", out, "--quiet")
    assert code == 0, err
    assert victim.read_text() == "keep"


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, capsys, monkeypatch):
    data, out = _csv(tmp_path / "d.csv"), tmp_path / "o"
    assert _run(capsys, "fit", data, "-k", 3, "--out", out, "--quiet")[0] == 0
    before = (out / "labels.csv").read_bytes()
    savetxt = np.savetxt

    def disk_full(path, *args, **kwargs):  # half the rows reach the disk, then ENOSPC
        savetxt(path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(4096 if os.path.getsize(path) > 4096 else 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savetxt", disk_full)
    code, _, err = _run(capsys, "fit", data, "-k", 2, "--out", out, "--quiet")
    assert code == 2 and "No space left" in err
    assert (out / "labels.csv").read_bytes() == before
    assert _temporaries(out) == []


def test_out_is_checked_before_the_fit(tmp_path, capsys, monkeypatch):
    data = _csv(tmp_path / "d.csv")
    (tmp_path / "afile").write_text("x")
    import probmix.infer.dispatch as dispatch

    monkeypatch.setattr(dispatch, "fit", lambda *a, **k: pytest.fail("fitted before the check"))
    code, _, err = _run(capsys, "fit", data, "-k", 2, "--out", tmp_path / "afile")
    assert code == 2 and "is a file" in err and "--out" in err
    for command in (["compare", data, "-k", 2], ["select", data, "-k", "1:2"]):
        code, _, err = _run(capsys, *command, "--out", tmp_path / "afile")
        assert code == 2 and "is a file" in err
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        code, _, err = _run(capsys, "fit", data, "-k", 2, "--out", ro / "sub")
        assert code == 2 and "cannot be written" in err


# ----------------------------------------------------------------------------- saved files


@pytest.fixture(scope="module")
def fit():
    return probmix.fit(probmix.GaussianMixture(2), X, seed=0)


def test_overwriting_keeps_the_files_mode(fit, tmp_path):
    path = tmp_path / "f.npz"
    fit.save(path)
    os.chmod(path, 0o600)
    fit.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    km = probmix.KMeans(2, seed=0).fit(X)
    os.chmod(path, 0o640)
    km.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_saving_through_a_symlink_writes_its_target(fit, tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "f.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    fit.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert np.array_equal(probmix.load(target).means, fit.means)
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "real" / "new.npz")
    fit.save(dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "new.npz").is_file()


def test_a_killed_save_leaves_temporaries_that_the_next_save_removes(fit, tmp_path):
    path = tmp_path / "f.npz"
    script = (f"import probmix, numpy as np, signal, os\n"
              f"import probmix.io.persistence.format as fmt\n"
              f"real = np.lib.format.write_array\n"
              f"def die(*a, **k):\n"
              f"    real(*a, **k); os.kill(os.getpid(), signal.SIGKILL)\n"
              f"np.lib.format.write_array = die\n"
              f"x, _ = probmix.three_clusters(40, seed=2)\n"
              f"probmix.fit(probmix.GaussianMixture(2), x, seed=0).save({str(path)!r})\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert killed.returncode == -9
    assert len(_temporaries(tmp_path)) == 1 and not path.exists()
    legacy = tmp_path / ".f.npz.ab12cd34.tmp"  # an earlier version's temporary, two hours old
    legacy.write_bytes(b"x")
    os.utime(legacy, (0, 0))
    live = tmp_path / f".f.npz.{os.getppid()}.00ff00ff{TEMP_SUFFIX}"  # a running writer's
    live.write_bytes(b"x")
    fit.save(path)
    assert _temporaries(tmp_path) == [live.name]
    assert np.array_equal(probmix.load(path).means, fit.means)


def test_replaced_removes_its_temporary_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with replaced(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["t.txt"]


def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path):
    """The console script imports torch and Pyro for about a second before a command runs
    (``import probmix`` itself is lazy: the command's first use of an engine imports them)."""
    script = ("import os, signal, sys, threading\n"
              "sys.argv[0] = '/usr/local/bin/probmix'\n"
              "threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
              "import probmix\n"
              "import probmix.infer.dispatch\n"
              "print('imported')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert run.stdout == "" and run.stderr == "probmix: interrupted\n"
    # any other program importing probmix keeps Python's usual traceback
    other = subprocess.run([sys.executable, "-c", script.replace("/usr/local/bin/probmix",
                                                                 "my_script.py")],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert "Traceback" in other.stderr and "KeyboardInterrupt" in other.stderr
