"""Cluster-bootstrap intervals: coverage under within-image correlation, non-finite values."""

import json

import numpy as np
import pytest

from ldmdata.metrics.intervals import cluster_draws, cluster_mean, pooled_psnr

IMAGES, PROMPTS, RHO = 100, 5, 0.5


def simulated(datasets: int, seed: int) -> np.ndarray:
    """``datasets x IMAGES x PROMPTS`` values of true mean 0, unit variance, and correlation
    RHO between the prompts of one image."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((datasets, IMAGES, 1))
    return np.sqrt(RHO) * image + np.sqrt(1 - RHO) * rng.standard_normal(
        (datasets, IMAGES, PROMPTS))


def coverage(values: np.ndarray, clusters: int, n_boot: int, seed: int) -> float:
    """How often the 95% percentile interval of each dataset's mean holds 0, all datasets
    resampled with the same ``cluster_draws`` (rows of one cluster are contiguous)."""
    per_cluster = values.reshape(len(values), clusters, -1)
    draws = cluster_draws(clusters, n_boot, seed)
    sizes = draws @ np.full(clusters, per_cluster.shape[2])
    means = (draws @ per_cluster.sum(2).T) / sizes[:, None]
    low, high = np.quantile(means, [0.025, 0.975], axis=0)
    return float(((low <= 0) & (0 <= high)).mean())


def test_image_clusters_hold_their_coverage_and_pairs_do_not():
    values = simulated(2000, seed=0)
    by_image = coverage(values, IMAGES, 1000, seed=1)
    by_pair = coverage(values, IMAGES * PROMPTS, 1000, seed=1)  # the old pair bootstrap
    assert by_image >= 0.93
    assert by_pair < 0.85
    # the vectorised draws above are exactly what cluster_mean does for one dataset
    first = values[0].ravel()
    labels = np.repeat([f"s{i}" for i in range(IMAGES)], PROMPTS)
    one = cluster_mean(first, labels, 1000, seed=1)
    draws = cluster_draws(IMAGES, 1000, 1)
    means = draws @ values[0].sum(1) / (draws @ np.full(IMAGES, PROMPTS))
    assert (one["ci_low"], one["ci_high"]) == pytest.approx(
        tuple(np.quantile(means, [0.025, 0.975])))
    assert one["n_clusters"] == IMAGES and one["n"] == IMAGES * PROMPTS
    assert one["ci_unit"] == "image"


def test_infinite_and_nan_values_are_counted_and_left_out():
    values = [float("inf"), 1.0, 3.0, float("nan"), 2.0, float("-inf")]
    result = cluster_mean(values, ["a", "a", "b", "b", "c", "d"], 200, seed=0)
    assert result["mean"] == pytest.approx(2.0)
    assert result["n"] == 3 and result["n_infinite"] == 2 and result["n_dropped"] == 1
    assert result["n_clusters"] == 3  # d holds only an infinite value
    assert result["note"] == "2 infinite value(s) left out of the mean and the interval"
    json.dumps(result, allow_nan=False)
    only_inf = cluster_mean([float("inf")] * 3, ["a", "b", "c"], 200, seed=0)
    assert only_inf["mean"] is None and only_inf["ci_low"] is None
    json.dumps(only_inf, allow_nan=False)


def test_pooled_psnr_is_one_psnr_of_the_pooled_mse():
    mse = [1e-3, 1e-2, 2e-3, 4e-3]
    result = pooled_psnr(mse, ["a", "a", "b", "c"], cap=None, n_boot=200, seed=0)
    assert result["mean"] == pytest.approx(-10 * np.log10(np.mean(mse)))
    assert result["mean"] != pytest.approx(np.mean(-10 * np.log10(mse)))
    assert result["pooled"] is True and result["n_clusters"] == 3
    assert result["ci_low"] <= result["mean"] <= result["ci_high"]
    one_identical = pooled_psnr([1e-3, 0.0, 4e-3], ["a", "b", "c"], None, 200, seed=0)
    assert one_identical["ci_low"] is None and "no interval" in one_identical["note"]
    capped = pooled_psnr([1e-3, 0.0, 4e-3], ["a", "b", "c"], 100.0, 200, seed=0)
    assert capped["ci_high"] == 100.0
    identical = pooled_psnr([0.0, 0.0], ["a", "b"], cap=None, n_boot=50, seed=0)
    assert identical["mean"] is None and "infinite" in identical["note"]
    json.dumps(identical, allow_nan=False)
    assert pooled_psnr([0.0, 0.0], ["a", "b"], cap=100.0, n_boot=50, seed=0)["mean"] == 100.0


def test_mismatched_cluster_labels_are_an_error():
    with pytest.raises(ValueError, match="3 values but 2 cluster labels"):
        cluster_mean([1.0, 2.0, 3.0], ["a", "b"], 10, seed=0)
