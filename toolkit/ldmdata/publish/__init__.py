"""Sharing datasets: Hub publishing with a provenance card, and opening any DVC version.

:func:`open_dataset` lives in :mod:`ldmdata.publish.versions` (imported on use, so that
``import ldmdata.publish`` stays free of dvc).
"""

from ldmdata.publish.card import DEFAULT_LICENSE, build_card
from ldmdata.publish.hub import PublishResult, check_repo_id, publish, stage
from ldmdata.publish.preview import make_preview

__all__ = [
    "DEFAULT_LICENSE",
    "PublishResult",
    "build_card",
    "check_repo_id",
    "make_preview",
    "publish",
    "stage",
]
