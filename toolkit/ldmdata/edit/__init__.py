"""Editing clean, adversarial and defended images with the real diffusers pipelines.

``params`` holds the study's preset and validation, ``inputs`` reads the three kinds of image
sets, ``runner`` edits one set into a new versioned one, and ``plan`` runs the DVC stage's
default, transfer and defence runs.
"""

from ldmdata.edit.params import EDITORS, PRESETS, EditParams, resolve_edit_params
from ldmdata.edit.runner import EditOptions, edit, edit_dataset, run_editor

__all__ = [
    "EDITORS",
    "PRESETS",
    "EditOptions",
    "EditParams",
    "edit",
    "edit_dataset",
    "resolve_edit_params",
    "run_editor",
]
