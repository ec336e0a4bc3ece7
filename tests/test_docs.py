"""README and docs/ stay true to the code: their code is executed here (examples/: test_examples.py)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_code_blocks_run(path):
    blocks = _python_blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no python block")
    namespace = {}
    for block in blocks:  # blocks of one page share a namespace, as a reader's session would
        exec(compile(block, str(path), "exec"), namespace)


def test_cli_demo_prints_the_table(tmp_path):
    out = subprocess.run([sys.executable, "-m", "probmix.cli", "demo", "--fast", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "MAP (closed-form EM" in out.stdout and "true mean" in out.stdout
    assert (tmp_path / "map_parameters.json").exists() and (tmp_path / "labels.csv").exists()
    assert "posterior of the component means" in out.stdout and "Gibbs" in out.stdout
    assert "mean shift" in out.stdout
    for name in ("posterior_means.json", "compare.png", "guessed_vs_true.png", "meanshift.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_cli_errors_are_one_line_with_exit_code_2():
    out = subprocess.run([sys.executable, "-m", "probmix.cli", "demo", "--seed", "-1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith("probmix: error:") and "Traceback" not in out.stderr
