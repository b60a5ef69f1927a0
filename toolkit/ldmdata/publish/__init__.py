"""Sharing datasets: Hub publishing with a provenance card, and opening any DVC version.

:func:`open_dataset` lives in :mod:`ldmdata.publish.versions` (imported on use, so that
``import ldmdata.publish`` stays free of dvc). The names below load on first use too, so
``ldmdata.publish.defaults`` (what the CLI's help needs) stays free of datasets.
"""

from ldmdata.lazy import lazy_exports

_LAZY = {
    "DEFAULT_LICENSE": "ldmdata.publish.defaults",
    "build_card": "ldmdata.publish.card",
    **dict.fromkeys(("PublishResult", "check_repo_id", "publish", "stage"),
                    "ldmdata.publish.hub"),
    "make_preview": "ldmdata.publish.preview",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
