"""Warm-up adaptation of a batched NUTS: step size by dual averaging, mass matrix by windows.

One step size and one mass matrix per chain, adapted as Stan does (Hoffman & Gelman 2014,
Stan reference manual "HMC algorithm parameters"):

- step size: dual averaging of log ε towards a target mean acceptance probability
  (γ = 0.05, t₀ = 10, κ = 0.75, μ = log 10 ε₀), the averaged ε kept after warm-up;
- mass matrix: the inverse mass is the regularised covariance (dense) or variance (diagonal)
  of the chain's own draws in windows of 25, 50, 100, ... iterations after an initial buffer
  of 75 (15% of a short warm-up) and before a final buffer of 50 (10%), shrunk towards
  1e-3 · I as (n Σ + 5e-3 I) / (n + 5); the step size restarts after each window.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DualAveraging", "mass_windows", "Welford"]


class DualAveraging:
    """Per-chain dual averaging of log step size towards ``target`` acceptance."""

    def __init__(self, step_size: torch.Tensor, target: float):
        self.target = target
        self.restart(step_size)

    def restart(self, step_size: torch.Tensor):
        self.mu = torch.log(10 * step_size)  # (C,)
        self.log_eps = torch.log(step_size)
        self.log_eps_bar = torch.zeros_like(self.mu)
        self.h_bar = torch.zeros_like(self.mu)
        self.t = 0

    def update(self, accept: torch.Tensor) -> torch.Tensor:
        """Take the mean acceptance (C,) of the last transition; return the next step size."""
        self.t += 1
        eta = 1.0 / (self.t + 10.0)
        self.h_bar = (1 - eta) * self.h_bar + eta * (self.target - accept)
        self.log_eps = self.mu - math.sqrt(self.t) / 0.05 * self.h_bar
        weight = self.t ** -0.75
        self.log_eps_bar = weight * self.log_eps + (1 - weight) * self.log_eps_bar
        return self.log_eps.exp()

    def final(self) -> torch.Tensor:
        return self.log_eps_bar.exp()


def mass_windows(num_warmup: int) -> list[int]:
    """The warm-up iterations (0-based) after which the mass matrix is re-estimated."""
    if num_warmup < 20:
        return []
    init, term, base = 75, 50, 25
    if init + term + base > num_warmup:
        init, term = int(0.15 * num_warmup), int(0.1 * num_warmup)
        base = num_warmup - init - term
    ends, start, size = [], init, base
    while start + size <= num_warmup - term:
        end = start + size
        if end + 2 * size > num_warmup - term:  # the last window runs to the final buffer
            end = num_warmup - term
        ends.append(end - 1)
        start, size = end, 2 * size
    return ends


class Welford:
    """Running mean and (co)variance of (C, P) draws, per chain."""

    def __init__(self, c: int, p: int, *, dense: bool, dtype, device):
        self.dense = dense
        self.n = 0
        self.mean = torch.zeros(c, p, dtype=dtype, device=device)
        self.m2 = torch.zeros(c, p, p, dtype=dtype, device=device) if dense \
            else torch.zeros(c, p, dtype=dtype, device=device)

    def add(self, z: torch.Tensor):
        self.n += 1
        delta = z - self.mean
        self.mean = self.mean + delta / self.n
        after = z - self.mean
        self.m2 = self.m2 + (delta[..., :, None] * after[..., None, :] if self.dense
                             else delta * after)

    def inverse_mass(self) -> torch.Tensor:
        """The regularised (co)variance, (C, P, P) or (C, P)."""
        n = self.n
        cov = self.m2 / max(n - 1, 1)
        shrink = 1e-3 * 5.0 / (n + 5.0)
        if self.dense:
            eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
            return cov * (n / (n + 5.0)) + shrink * eye
        return cov * (n / (n + 5.0)) + shrink
