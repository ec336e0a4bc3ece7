"""The from-scratch PyTorch KMeans/GMM walkthrough, redone with probmix, plus the model it needs.

Data: four 2-D Gaussian clusters with diagonal covariances plus 20 % uniform background
noise over a box, standardised (zero mean, unit variance per feature) before clustering,
as in the walkthrough. Fits: KMeans from 20 random starts inside the data's bounding box
(best inertia kept), a diagonal-covariance Gaussian mixture (probmix.fit, EM started from
k-means), and models/gaussian_background.py, which adds a uniform background component:
it labels the noise as noise and keeps the clusters' covariances unbiased, where the plain
GMM stretches them over the noise. The figure goes to --out (default: a new temporary
directory, printed).

Run: python examples/walkthrough_pytorch.py [--fast] [--out DIR]
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

import probmix

ROOT = Path(__file__).resolve().parents[1]


def load_model(name):
    """A program of the models/ gallery (a plain file, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "models" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(fast: bool = False, out: str | None = None) -> dict:
    background = load_model("gaussian_background")
    n = 1000 if fast else 4000
    x_raw, z, truth = background.simulate(n, seed=0)
    x_new, z_new, _ = background.simulate(n, seed=1)
    center, scale = x_raw.mean(0), x_raw.std(0)
    x, x_test = (x_raw - center) / scale, (x_new - center) / scale  # standardised

    km = probmix.KMeans(4, init="random", n_init=20, seed=0).fit(x)
    gmm = probmix.fit(probmix.GaussianMixture(4, covariance="diag"), x, seed=0)
    bg = probmix.fit(background.program, x, seed=0, n_init=3)

    noise = z == 4
    results = {
        "kmeans_inertia": float(km.inertia_),
        "gmm_heldout_loglik": gmm.score(x_test),
        "background_heldout_loglik": bg.score(x_test),
        "noise_labelled_background": float(np.mean(bg.predict(x)[noise] == 4)),
        "background_share": float(bg.params["background"]),
    }
    # variances of each true cluster (standardised units): truth, GMM, background model
    true_var = np.stack([x[z == j].var(0) for j in range(4)])
    gmm_k = [np.bincount(gmm.predict(x)[z == j], minlength=4).argmax() for j in range(4)]
    bg_k = [np.bincount(bg.predict(x)[z == j], minlength=5).argmax() for j in range(4)]
    gmm_var = np.stack([np.diag(gmm.covariances[k]) for k in gmm_k])
    bg_var = bg.params["scales"][bg_k] ** 2
    results["gmm_max_variance_error"] = float(np.max(np.abs(gmm_var / true_var - 1)))
    results["background_max_variance_error"] = float(np.max(np.abs(bg_var / true_var - 1)))
    for key, value in results.items():
        print(f"{key:>32}: {value:.3f}")

    import matplotlib.pyplot as plt

    out_dir = Path(out if out is not None else tempfile.mkdtemp(prefix="walkthrough_pytorch_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), sharex=True, sharey=True)
    panels = [("KMeans, 20 random starts", km.labels_), ("GMM (diagonal)", gmm.predict(x)),
              ("GMM + uniform background", bg.predict(x))]
    for ax, (title, labels) in zip(axes, panels):
        ax.scatter(x[:, 0], x[:, 1], c=labels, s=4, cmap="tab10", vmin=0, vmax=9)
        ax.set_title(title)
    fig.savefig(out_dir / "walkthrough_pytorch.png", dpi=80)
    plt.close(fig)
    print(f"figure: {out_dir / 'walkthrough_pytorch.png'}")
    return results


if __name__ == "__main__":
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    main(fast="--fast" in sys.argv, out=out)
