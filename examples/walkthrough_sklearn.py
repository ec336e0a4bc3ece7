"""The scikit-learn clustering walkthrough, redone with probmix (MAP part).

Three 2-D Gaussian clusters of 1000 points. The walkthrough's first covariance,
[[0.1, 0.2], [0.2, 0.1]], is not positive semi-definite, so we use [[0.3, 0.2],
[0.2, 0.3]]. Fit a full-covariance Gaussian mixture by EM (max_iter=20 as in the
walkthrough), print means, covariances and weights, and compare the guessed with the
true source. Run: python examples/walkthrough_sklearn.py [--fast]
"""

import sys

import numpy as np

import probmix


def main(fast: bool = False) -> float:
    x, source = probmix.three_clusters(200 if fast else 1000, seed=0)
    model = probmix.GaussianMixture(3, covariance="full", prior="flat")  # as sklearn: ML
    fit = probmix.fit(model, x, max_iter=20, seed=0)
    print(fit.parameter_table())
    guess = fit.predict(x)
    # map each fitted component to the true source it mostly holds
    mapping = np.array([np.bincount(source[guess == k], minlength=3).argmax() for k in range(3)])
    agreement = float(np.mean(mapping[guess] == source))
    print(f"guessed source agrees with the true association for {agreement:.1%} of the points")
    km = probmix.KMeans(3, n_init=10, seed=0).fit(x)
    print("KMeans centres:\n", np.round(km.cluster_centers_, 3))
    return agreement


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
