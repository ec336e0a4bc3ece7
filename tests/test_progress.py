"""Progress output suits where it goes: a start and an end line per long step in a log."""

import subprocess
import sys

import numpy as np

import probmix
from probmix._progress import LineReporter, progress_bar


def test_log_gets_one_line_at_the_start_and_one_at_the_end(capsys):
    x, _ = probmix.three_clusters(100, seed=0)
    probmix.fit(probmix.GaussianMixture(2), x, engine="mcmc", method="gibbs", num_warmup=20,
                num_samples=30, num_chains=1, seed=0, progress=True)
    err = capsys.readouterr().err  # captured: not a terminal
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert "started (50 it)" in lines[0] and "done, 50 it in" in lines[1]


def test_reporter_counts_iterations_and_is_silent_when_off(capsys):
    assert list(LineReporter(range(4), desc="job")) == [0, 1, 2, 3]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "job: started (4 it)" and lines[1].startswith("job: done, 4 it in")
    for _ in progress_bar(range(3), enabled=False, desc="quiet"):
        pass
    assert capsys.readouterr().err == ""


def test_demo_log_stays_short(tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-m", "probmix.cli", "demo", "--fast"], stdout=out,
                       stderr=subprocess.STDOUT, check=True, timeout=600)
    text = log.read_text()
    assert "\r" not in text
    assert len(text.splitlines()) < 200
    assert np.any(["Gibbs (sampling): done" in line for line in text.splitlines()])


def test_terminal_gets_a_redrawing_bar(monkeypatch):
    import io

    from tqdm import tqdm

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = progress_bar(total=3, enabled=True, desc="job")
    assert isinstance(bar, tqdm) and not isinstance(bar, LineReporter)
    bar.update(3)
    bar.close()
    assert "\r" in terminal.getvalue()
