"""What a new user waits for: ``import probmix`` loads no heavy library, every public name
resolves, and the first small fit compiles no numba kernel (issue 19)."""

import subprocess
import sys

import probmix


def _run(code: str, **env) -> str:
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True, timeout=300)
    return out.stdout.strip()


def test_import_loads_no_heavy_library():
    loaded = _run("import sys, probmix; print(' '.join(sorted(m for m in "
                  "('torch', 'pyro', 'numba', 'arviz', 'matplotlib', 'scipy', 'pandas') "
                  "if m in sys.modules)))")
    assert loaded == ""


def test_command_line_parses_without_torch():
    # `probmix --help` and argument errors answer before torch is imported
    loaded = _run("import sys; from probmix.cli import app; app._parser(); print(' '.join("
                  "m for m in ('torch', 'pyro', 'numba', 'matplotlib') if m in sys.modules))")
    assert loaded == ""


def test_every_public_name_resolves():
    for name in probmix.__all__:
        assert getattr(probmix, name) is not None, name
    assert set(probmix.__all__) <= set(dir(probmix))
    from probmix import GaussianMixture, fit  # the from-import form works too

    assert callable(fit) and GaussianMixture.__name__ == "GaussianMixture"


def test_first_small_fit_compiles_no_kernel(tmp_path):
    # a fresh numba cache stays empty: the 3000 x 2 fit runs the torch code, not a compile
    code = ("import probmix; x, _ = probmix.three_clusters(seed=0); "
            "probmix.fit(probmix.GaussianMixture(3), x, engine='map', seed=0); "
            "probmix.KMeans(n_clusters=3, seed=0).fit(x)")
    _run(code, NUMBA_CACHE_DIR=str(tmp_path), PROBMIX_FUSED="")
    assert list(tmp_path.rglob("*.nbi")) == []
