"""Relabelling: permutations found exactly, applied to every component-indexed site."""

import numpy as np

from probmix.results.relabel import apply_permutations, permutations_to_reference, relabel_draws


def _scrambled(rng, c=3, s=40):
    ref = np.array([[0.0, 0.0], [6.0, 6.0], [-6.0, 4.0]])
    perms = np.array([rng.permutation(3) for _ in range(c * s)]).reshape(c, s, 3)
    means = ref[perms] + 0.3 * rng.normal(size=(c, s, 3, 2))
    return ref, perms, means


def test_recovers_the_scrambling(rng):
    ref, perms, means = _scrambled(rng)
    found = permutations_to_reference(means, ref)
    undone = apply_permutations(means, found, axis=-2)
    assert np.abs(undone - ref).max() < 1.5  # every component back at its reference
    # found ∘ perms is the identity: draw component found[k] came from reference perms[found[k]]
    np.testing.assert_array_equal(np.take_along_axis(perms, found, -1),
                                  np.broadcast_to(np.arange(3), perms.shape))


def test_applies_to_every_site_and_leaves_others(rng):
    ref, perms, means = _scrambled(rng)
    weights = np.array([0.2, 0.3, 0.5])[perms]
    cov = np.arange(3.0)[perms][..., None, None] * np.eye(2)  # (C, S, K, D, D)
    shared = rng.normal(size=(3, 40, 2, 2))
    out, _ = relabel_draws({"means": means, "weights": weights, "covariances": cov,
                            "tied": shared}, ref, {"means": -2, "weights": -1, "covariances": -3},
                           signature="means")
    np.testing.assert_array_equal(out["weights"], np.broadcast_to([0.2, 0.3, 0.5], weights.shape))
    np.testing.assert_array_equal(out["covariances"][..., 0, 0],
                                  np.broadcast_to([0.0, 1.0, 2.0], weights.shape))
    np.testing.assert_array_equal(out["tied"], shared)


def test_noisy_near_equal_coordinate_does_not_drown_a_separated_one(rng):
    """Weights ≈ 1/2 each (noisy) next to well-separated locations: the locations decide."""
    c, s = 1, 500
    ref = np.array([[0.5, -3.0], [0.5, 3.0]])
    perms = np.array([rng.permutation(2) for _ in range(c * s)]).reshape(c, s, 2)
    sig = ref[perms] + np.array([0.02, 0.1]) * rng.normal(size=(c, s, 2, 2))
    found = permutations_to_reference(sig, ref)
    np.testing.assert_array_equal(np.take_along_axis(perms, found, -1),
                                  np.broadcast_to(np.arange(2), perms.shape))
