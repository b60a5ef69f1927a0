"""Sharing datasets: Hub publishing with a provenance card, and opening any DVC version.

The names below load on first use, so ``import ldmdata.publish`` stays free of dvc and
datasets (``ldmdata.publish.defaults`` is what the CLI's help needs).
"""

from ldmdata.lazy import lazy_exports

_LAZY = {
    "DEFAULT_LICENSE": "ldmdata.publish.defaults",
    "build_card": "ldmdata.publish.card",
    **dict.fromkeys(("PublishResult", "check_repo_id", "publish", "stage"),
                    "ldmdata.publish.hub"),
    "make_preview": "ldmdata.publish.preview",
    "open_dataset": "ldmdata.publish.versions",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
