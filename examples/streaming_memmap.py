"""Fit a Gaussian mixture to a file too big to hold: exact EM streamed chunk by chunk.

Writes N rows (default 10^8 × 2, float32: 0.8 GB) of a 5-cluster mixture to a
memory-mapped .npy file, then fits it with ``probmix.fit(model, path,
engine="map", chunk_size=...)``: every EM iteration reads the file once, chunk
by chunk, and sums the chunks' sufficient statistics, so the answer is the
in-memory EM answer while memory stays at a few chunks. Then one pass of
online EM and mini-batch k-means for comparison. Prints the fitted parameters
against the truth, the time per pass and the peak resident memory.

Run:  python examples/streaming_memmap.py [--rows N] [--out DIR] [--fast]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

import probmix

MEANS = np.array([[-6.0, 0.0], [-2.0, 4.0], [2.0, -3.0], [5.0, 3.0], [8.0, -1.0]])
SCALES = np.array([0.8, 1.0, 0.6, 1.2, 0.7])
WEIGHTS = np.array([0.3, 0.2, 0.2, 0.15, 0.15])


def write_data(path: Path, n_rows: int, *, seed: int = 0, block: int = 2_000_000) -> None:
    """N rows of the 5-cluster mixture, written block by block into a .npy memmap (float32)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, 2))
    rng = np.random.default_rng(seed)
    for start in range(0, n_rows, block):
        n = min(block, n_rows - start)
        z = rng.choice(5, size=n, p=WEIGHTS)
        out[start:start + n] = MEANS[z] + SCALES[z, None] * rng.standard_normal((n, 2))
    out.flush()
    del out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(*, rows: int = 100_000_000, out: str | None = None, fast: bool = False) -> dict:
    if fast:
        rows = min(rows, 200_000)
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="probmix-stream-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.npy"
    start = time.perf_counter()
    write_data(path, rows)
    size_gb = path.stat().st_size / 1e9
    print(f"wrote {rows:,} rows × 2 (float32, {size_gb:.2f} GB) in "
          f"{time.perf_counter() - start:.1f} s to {path}")
    rss_before = peak_rss_mb()

    model = probmix.GaussianMixture(5, covariance="full", prior="flat")
    start = time.perf_counter()
    fit = probmix.fit(model, path, engine="map", chunk_size=1_000_000, max_iter=30, tol=1e-6,
                      seed=0, progress=not fast)
    seconds = time.perf_counter() - start
    passes = fit.n_iter + 2  # the scan pass, the EM iterations, the final E-step
    order = np.argsort(fit.means[:, 0])
    print(f"\nexact streamed EM: {fit.n_iter} iterations, {seconds:.1f} s "
          f"({seconds / passes:.2f} s per pass over the file, "
          f"{rows * passes / seconds / 1e6:.1f} M rows/s)")
    print(f"{'weight':>8} {'true':>6}   {'mean':>18} {'true mean':>14}   sd (fit / true)")
    for k, j in enumerate(order):
        sd = np.sqrt(np.diag(fit.covariances[j])).mean()
        print(f"{fit.weights[j]:8.4f} {WEIGHTS[k]:6.2f}   {np.array2string(fit.means[j], precision=3):>18}"
              f" {np.array2string(MEANS[k], precision=1):>14}   {sd:.3f} / {SCALES[k]:.1f}")

    start = time.perf_counter()
    online = probmix.fit(model, path, engine="map", method="online", chunk_size=100_000,
                         seed=0)
    t_online = time.perf_counter() - start
    err_online = np.abs(np.sort(online.means[:, 0]) - MEANS[:, 0]).max()
    print(f"\nonline EM, one pass: {t_online:.1f} s, largest error of a mean's x: {err_online:.3f}")
    start = time.perf_counter()
    mini = probmix.MiniBatchKMeans(5, batch_size=100_000, max_epochs=1, seed=0).fit(path)
    t_mini = time.perf_counter() - start
    err_mini = np.abs(np.sort(mini.cluster_centers_[:, 0]) - MEANS[:, 0]).max()
    print(f"mini-batch k-means, one pass: {t_mini:.1f} s, largest error of a centre's x: "
          f"{err_mini:.3f}")

    peak = peak_rss_mb()
    print(f"\npeak resident memory: {peak:.0f} MB (the file is {size_gb * 1e3:.0f} MB; "
          f"{rss_before:.0f} MB before fitting)")
    mean_error = float(np.abs(fit.means[order] - MEANS).max())
    return {"mean_error": mean_error, "peak_mb": peak, "seconds_per_pass": seconds / passes,
            "online_error": float(err_online), "minibatch_error": float(err_mini)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--out", default=None, help="folder for the data file (default: temp)")
    parser.add_argument("--fast", action="store_true", help="200k rows, for the tests")
    args = parser.parse_args()
    main(rows=args.rows, out=args.out, fast=args.fast)
