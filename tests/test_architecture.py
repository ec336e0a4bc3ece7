"""The package's shape: no import cycles (imports inside functions count) and short modules."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_LINES = 400
# Modules allowed over MAX_LINES (none since issue 15); an entry must name its reason.
OVER_LIMIT: set[str] = set()


def _tool():
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles():
    found = _tool().cycles(ROOT)
    report = "\n".join(f"{', '.join(comp)}: " + "; ".join(f"{a}:{line} imports {b}"
                                                         for a, b, line in inner)
                       for comp, inner in found)
    assert not found, f"import cycles:\n{report}"


def test_the_cycle_tool_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "probmix"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from probmix.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from probmix import a\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from probmix import a\n")
    found = _tool().cycles(tmp_path)
    assert [comp for comp, _ in found] == [["probmix.a", "probmix.sub.b"]]


def test_modules_are_short():
    lengths = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
               for path in sorted((ROOT / "probmix").rglob("*.py"))}
    offenders = {p: n for p, n in lengths.items() if n > MAX_LINES and p not in OVER_LIMIT}
    assert not offenders, f"modules over {MAX_LINES} lines: {offenders}"
    done = sorted(p for p in OVER_LIMIT if lengths.get(p, 0) <= MAX_LINES)
    assert not done, f"now at most {MAX_LINES} lines, remove from OVER_LIMIT: {done}"
