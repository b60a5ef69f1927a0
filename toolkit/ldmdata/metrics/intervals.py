"""Seeded cluster-bootstrap intervals: the source image is the unit of resampling.

The prompts (and attacked prompts) of one source image give correlated values, so resampling
rows as if independent makes intervals too narrow (with 5 prompts per image and a within-image
correlation of 0.5, a nominal 95% pair interval covers the mean ~72% of the time, this one
~94%: tests/test_intervals.py). A resample here draws as many source images as there are,
with replacement, each with all its rows. A resample is a vector of per-cluster counts, so a
mean over a resample is a ratio of weighted sums: :func:`cluster_draws` ``@`` per-cluster sums.

Non-finite values are never averaged: NaN is dropped (``n_dropped``), +-inf is left out of the
mean and the interval and counted (``n_infinite``, with a ``note``).
"""

from __future__ import annotations

import math

import numpy as np

CI_UNIT = "image"


def cluster_codes(clusters) -> tuple[np.ndarray, int]:
    """Each row's cluster as 0..G-1 (first-seen order) and G."""
    index: dict = {}
    codes = np.array([index.setdefault(c, len(index)) for c in clusters], dtype=np.int64)
    return codes, len(index)


def cluster_draws(n_clusters: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot x G`` counts: how often each cluster is drawn in each resample."""
    drawn = np.random.default_rng(seed).integers(0, n_clusters, size=(n_boot, n_clusters))
    flat = (drawn + n_clusters * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)


def percentile_interval(samples, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """The percentile interval of bootstrap ``samples`` (None when fewer than 2 are finite)."""
    data = np.asarray([s for s in samples if s is not None and math.isfinite(s)], np.float64)
    if data.size < 2:
        return None, None
    low, high = np.quantile(data, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _finite_rows(values, clusters) -> tuple[dict, np.ndarray, np.ndarray]:
    data = np.asarray(values, dtype=np.float64)
    if len(clusters) != data.size:
        raise ValueError(f"{data.size} values but {len(clusters)} cluster labels")
    nan, inf = np.isnan(data), np.isinf(data)
    keep = ~(nan | inf)
    codes, groups = cluster_codes([c for c, k in zip(clusters, keep, strict=True) if k])
    counts = {"n": int(keep.sum()), "n_dropped": int(nan.sum()), "n_infinite": int(inf.sum()),
              "n_clusters": groups, "ci_unit": CI_UNIT}
    return counts, data[keep], codes


def _with_note(result: dict) -> dict:
    if result["n_infinite"]:
        result["note"] = (f"{result['n_infinite']} infinite value(s) left out of the mean "
                          "and the interval")
    return result


def cluster_mean(values, clusters, n_boot: int, seed: int, confidence: float = 0.95) -> dict:
    """Mean of the finite ``values`` and a cluster-bootstrap percentile interval of it.

    ``clusters`` labels each value's source image. No finite values: mean and interval None;
    one cluster: no interval.
    """
    counts, data, codes = _finite_rows(values, clusters)
    result = {"mean": None, "ci_low": None, "ci_high": None, **counts}
    if data.size == 0:
        return _with_note(result)
    result["mean"] = float(data.mean())
    groups = counts["n_clusters"]
    if n_boot > 0 and groups > 1:
        draws = cluster_draws(groups, n_boot, seed)
        sums = np.bincount(codes, weights=data, minlength=groups)
        sizes = np.bincount(codes, minlength=groups)
        result["ci_low"], result["ci_high"] = percentile_interval(
            (draws @ sums) / (draws @ sizes), confidence)
    return _with_note(result)


def _psnr_of(mse, cap: float | None) -> np.ndarray:
    with np.errstate(divide="ignore"):
        values = -10 * np.log10(np.asarray(mse, dtype=np.float64))
    return values if cap is None else np.minimum(values, cap)


def pooled_psnr(mse, clusters, cap: float | None, n_boot: int, seed: int,
                confidence: float = 0.95) -> dict:
    """PSNR (data range 1) of the MSE pooled over all rows, and its cluster-bootstrap interval.

    The study's torchmetrics ``PeakSignalNoiseRatio`` over a stack of same-size images: one
    PSNR of the summed squared error, not a mean of per-image PSNRs.
    """
    counts, data, codes = _finite_rows(mse, clusters)
    result = {"mean": None, "ci_low": None, "ci_high": None, **counts, "pooled": True}
    if data.size == 0:
        return result
    value = float(_psnr_of(data.mean(), cap))
    if math.isinf(value):
        result["note"] = "every pair is identical: the pooled PSNR is infinite (psnr_cap null)"
        return result
    result["mean"] = value
    groups = counts["n_clusters"]
    if n_boot > 0 and groups > 1:
        draws = cluster_draws(groups, n_boot, seed)
        sums = np.bincount(codes, weights=data, minlength=groups)
        sizes = np.bincount(codes, minlength=groups)
        boots = _psnr_of((draws @ sums) / (draws @ sizes), cap)
        if np.isfinite(boots).all():
            result["ci_low"], result["ci_high"] = percentile_interval(boots, confidence)
        else:
            result["note"] = "some resamples hold only identical pairs: no interval"
    return result


def cluster_rows(labels, order: list) -> list[np.ndarray]:
    """The row indices of each cluster of ``order`` among the rows ``labels``."""
    labels = np.asarray(labels, dtype=object)
    return [np.flatnonzero(labels == c) for c in order]


def resampled_rows(rows: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    """The rows of one resample: each cluster's rows, as often as it was drawn."""
    chosen = [rows[g] for g in np.repeat(np.arange(len(rows)), counts)]
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
