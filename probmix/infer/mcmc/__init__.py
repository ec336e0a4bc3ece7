"""Samplers: blocked Gibbs for the conjugate Gaussian mixture, NUTS for any program (with
the closed-form potentials that make it fast)."""
