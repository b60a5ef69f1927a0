"""The evaluate settings: defaults (params.yaml's ``evaluate`` section) and their checks.

Free of torch, so the CLI's help and the report read them without loading the metrics.
"""

from __future__ import annotations

from ldmdata.errors import LdmdataError
from ldmdata.metrics.names import METRICS
from ldmdata.params import is_int, is_number, merge_known

PROTOCOLS = ("ldmdata", "study")
PRECISIONS = ("float64", "float32")
DEFAULT_PSNR_CAP = 100.0

# params.yaml ``evaluate`` section (and the library's defaults).
DEFAULTS: dict = {
    "protocol": "ldmdata",       # ldmdata | study (ldmdata.metrics.protocols)
    "metrics": list(METRICS),
    "features": "auto",          # auto | clip | inception (FID and IS)
    "inception_weights": None,   # a local torch-fidelity Inception weights file
    "psnr_cap": DEFAULT_PSNR_CAP,  # dB; null keeps inf (left out of means, counted)
    "ssim_sigma": 1.5,           # Gaussian window: 2 * int(3.5 sigma + 0.5) + 1 px
    "ms_ssim_normalize": "relu",  # relu | simple | null (torchmetrics' options)
    "bootstrap": 1000,           # cluster resamples (source images) for per-sample metrics
    "set_bootstrap": 100,        # cluster resamples for FID / IS (each recomputes the metric)
    "confidence": 0.95,
    "seed": 0,
    "is_splits": 10,
    "batch_size": 16,
    "device": "auto",
    "precision": "float64",      # of PSNR/SSIM/MS-SSIM: float64 (SSIM of x vs x is 1) | float32
    "threads": None,             # torch CPU threads; None leaves torch's choice
}


def evaluate_settings(given: dict | None = None) -> dict:
    """``DEFAULTS`` updated by ``given``, validated (one line for the first bad value)."""
    s = merge_known(DEFAULTS, given or {}, "evaluate params")
    unknown = [m for m in s["metrics"] if m not in METRICS] if isinstance(s["metrics"], list) \
        else ["(not a list)"]
    if unknown or not s["metrics"]:
        raise LdmdataError(
            f"evaluate metrics: unknown {', '.join(map(str, unknown)) or '(empty list)'}; "
            f"choose from {', '.join(METRICS)}"
        )
    checks = [
        (s["protocol"] in PROTOCOLS,
         f"protocol must be one of {', '.join(PROTOCOLS)}, got {s['protocol']!r}"),
        (s["psnr_cap"] is None or is_number(s["psnr_cap"]) and s["psnr_cap"] > 0,
         f"psnr_cap must be a positive number of dB or null, got {s['psnr_cap']!r}"),
        (is_number(s["ssim_sigma"]) and s["ssim_sigma"] > 0,
         f"ssim_sigma must be > 0, got {s['ssim_sigma']!r}"),
        (s["ms_ssim_normalize"] in ("relu", "simple", None),
         f"ms_ssim_normalize must be relu, simple or null, got {s['ms_ssim_normalize']!r}"),
        (is_int(s["bootstrap"]) and s["bootstrap"] >= 0,
         f"bootstrap must be an integer >= 0, got {s['bootstrap']!r}"),
        (is_int(s["set_bootstrap"]) and s["set_bootstrap"] >= 0,
         f"set_bootstrap must be an integer >= 0, got {s['set_bootstrap']!r}"),
        (is_number(s["confidence"]) and 0 < s["confidence"] < 1,
         f"confidence must be in (0, 1), got {s['confidence']!r}"),
        (is_int(s["seed"]) and s["seed"] >= 0, f"seed must be an integer >= 0, got {s['seed']!r}"),
        (is_int(s["is_splits"]) and s["is_splits"] >= 1,
         f"is_splits must be an integer >= 1, got {s['is_splits']!r}"),
        (is_int(s["batch_size"]) and s["batch_size"] >= 1,
         f"batch_size must be an integer >= 1, got {s['batch_size']!r}"),
        (s["precision"] in PRECISIONS,
         f"precision must be float64 or float32, got {s['precision']!r}"),
        (s["threads"] is None or is_int(s["threads"]) and s["threads"] >= 1,
         f"threads must be an integer >= 1 or null, got {s['threads']!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise LdmdataError(message)
    if s["features"] != "auto":
        from ldmdata.metrics.features import choose_features

        choose_features(s["features"], s["inception_weights"])
    return s
