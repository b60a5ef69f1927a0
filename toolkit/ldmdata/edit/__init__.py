"""Editing clean, adversarial and defended images with the real diffusers pipelines.

``params`` holds the study's preset and validation, ``inputs`` reads the three kinds of image
sets, ``runner`` edits one set into a new versioned one, and ``plan`` runs the DVC stage's
default, transfer and defence runs. The names below load on first use, so
``ldmdata.edit.params`` (what the CLI's help needs) stays free of torch.
"""

from ldmdata.lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(("EDITORS", "PRESETS", "EditParams", "resolve_edit_params"),
                    "ldmdata.edit.params"),
    **dict.fromkeys(("EditOptions", "edit", "edit_dataset", "run_editor"),
                    "ldmdata.edit.runner"),
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
