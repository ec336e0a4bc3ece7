"""The scikit-learn clustering walkthrough, redone with probmix.

Three 2-D Gaussian clusters of 1000 points with a known ``source`` (0, 1, 2). The
walkthrough's first covariance, [[0.1, 0.2], [0.2, 0.1]], is not positive semi-definite
(eigenvalues 0.3 and -0.1: no Gaussian has it; numpy warns and samples anyway, probmix
refuses), so we use [[0.3, 0.2], [0.2, 0.3]]. Then, as in the walkthrough:

1. A Gaussian mixture by EM (``max_iter=20``, maximum likelihood as scikit-learn's
   ``GaussianMixture``): means, covariances and weights; the guessed source against the
   true association, side by side.
2. KMeans with 3 clusters: the limit of a mixture whose components share one spherical
   covariance shrinking to 0 (every point then belongs wholly to its nearest centre).
3. The variational Gaussian mixture (CAVI, the algorithm of scikit-learn's
   ``BayesianGaussianMixture``): a posterior over the means, covariances and weights
   themselves, printed as posterior sds and drawn as ellipses of posterior draws.

Mixtures of Gaussians find blobs; for rings and moons see walkthrough_meanshift.py.
(The walkthrough also mentions DBSCAN, agglomerative and spectral clustering for those.)

Run: python examples/walkthrough_sklearn.py [--fast] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display needed

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import probmix  # noqa: E402
from probmix import plot  # noqa: E402
from probmix.io.datasets import THREE_CLUSTERS  # noqa: E402

NAME = "walkthrough_sklearn"


def _out_dir(out, fast: bool) -> Path:
    if out is None:
        out = tempfile.mkdtemp(prefix=f"{NAME}-") if fast else Path("probmix-examples") / NAME
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def agreement(guess, source) -> float:
    """Share of points whose guessed cluster's majority source is their own source."""
    k = int(guess.max()) + 1
    mapping = np.array([np.bincount(source[guess == j], minlength=3).argmax() if
                        np.any(guess == j) else -1 for j in range(k)])           # (K,)
    return float(np.mean(mapping[guess] == source))


def kmeans_figure(km, x, source):
    """KMeans' guessed source next to the true association (colours matched by overlap)."""
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    guess = km.labels_
    mapping = np.array([np.bincount(source[guess == j], minlength=3).argmax() for j in range(3)])
    left.scatter(x[:, 0], x[:, 1], c=mapping[guess], cmap="tab10", vmin=0, vmax=9, s=6)
    left.scatter(*km.cluster_centers_.T, marker="*", s=300, c="black", label="centres")
    left.legend()
    left.set_title("guessed source (KMeans)")
    right.scatter(x[:, 0], x[:, 1], c=source, cmap="tab10", vmin=0, vmax=9, s=6)
    right.set_title("true association")
    for ax in (left, right):
        ax.set_xlabel("feature 1")
        ax.set_ylabel("feature 2")
    fig.suptitle(f"KMeans: {100 * agreement(guess, source):.1f}% of points agree")
    return fig


def main(*, fast: bool = False, out=None) -> dict:
    """Run the walkthrough; figures go to ``out``. Returns the numbers it prints."""
    out = _out_dir(out, fast)
    x, source = probmix.three_clusters(200 if fast else 1000, seed=0)
    truth = THREE_CLUSTERS
    files = []

    # 1. EM for the Gaussian mixture. E-step: the responsibility of each component for each
    # point, given the parameters. M-step: the parameters that maximise the expected
    # complete-data log-likelihood under those responsibilities. prior="flat" makes it
    # maximum likelihood, as scikit-learn's GaussianMixture.
    model = probmix.GaussianMixture(3, covariance="full", prior="flat")
    gmm = probmix.fit(model, x, max_iter=20, seed=0)
    print("Gaussian mixture, EM (maximum likelihood):")
    print(gmm.parameter_table())
    order = [int(np.argmin(np.linalg.norm(gmm.means - m, axis=1))) for m in truth["means"]]
    mean_error = float(np.abs(gmm.means[order] - truth["means"]).max())
    print(f"largest distance of a fitted mean coordinate from the truth: {mean_error:.3f}")
    guess = gmm.predict(x)                                  # the walkthrough's "guess" column
    scores = {"GMM (EM)": agreement(guess, source)}
    plot.guessed_vs_true(gmm, x, source).savefig(out / "gmm_guessed_vs_true.png", dpi=80)
    files.append(out / "gmm_guessed_vs_true.png")

    # 2. KMeans: hard assignments to the nearest centre, equal spherical clusters. The
    # third cluster (variances 2 and 5) is elongated, which KMeans cannot represent.
    km = probmix.KMeans(3, n_init=10, seed=0).fit(x)
    scores["KMeans"] = agreement(km.labels_, source)
    print("\nKMeans centres:\n", np.round(km.cluster_centers_, 3))
    kmeans_figure(km, x, source).savefig(out / "kmeans_guessed_vs_true.png", dpi=80)
    files.append(out / "kmeans_guessed_vs_true.png")

    # 3. The variational Gaussian mixture: the default prior (Dirichlet weights,
    # Normal-Wishart components scaled to the data) and the closed-form mean-field
    # posterior. Its draws give uncertainty on the means and covariances themselves.
    vgmm = probmix.fit(probmix.GaussianMixture(3), x, engine="svi", method="cavi", seed=0,
                       num_draws=500)
    scores["variational GMM"] = agreement(vgmm.predict(x), source)
    mean_sd = vgmm.draws["means"].std(axis=(0, 1))                         # (K, D)
    cov_sd = vgmm.draws["covariances"].std(axis=(0, 1))                    # (K, D, D)
    print("\nVariational Gaussian mixture (CAVI): posterior mean ± sd")
    for k in range(3):
        m = ", ".join(f"{v:.3f} ± {s:.3f}" for v, s in zip(vgmm.means[k], mean_sd[k]))
        c = ", ".join(f"{v:.3f} ± {s:.3f}" for v, s in
                      zip(vgmm.covariances[k].ravel(), cov_sd[k].ravel()))
        print(f"  component {k}: weight {vgmm.weights[k]:.3f}; mean ({m}); covariance [{c}]")
    plot.guessed_vs_true(vgmm, x, source).savefig(out / "vgmm_guessed_vs_true.png", dpi=80)
    plot.uncertainty(vgmm, x, n_draws=40).savefig(out / "vgmm_uncertainty.png", dpi=80)
    files += [out / "vgmm_guessed_vs_true.png", out / "vgmm_uncertainty.png"]

    print("\nguessed source agrees with the true association for:")
    for name, score in scores.items():
        print(f"  {name:16s} {score:.1%} of the points")
    print(f"Figures: {', '.join(str(f) for f in files)}")
    return {"agreement": scores, "mean_error": mean_error, "weights": gmm.weights,
            "vgmm_mean_sd": mean_sd, "vgmm_cov_sd": cov_sd, "files": files}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="smaller data (a test run)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the figures (default ./probmix-examples/{NAME}; "
                             "a temporary folder with --fast)")
    args = parser.parse_args()
    results = main(fast=args.fast, out=args.out)
