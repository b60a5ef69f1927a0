"""Dataset builders: inpainting triplets, img2img pairs, super-resolution pairs."""

from ldmdata.builders.run import build_dataset
from ldmdata.builders.settings import TASK_DEFAULTS, TASKS

__all__ = ["TASKS", "TASK_DEFAULTS", "build_dataset"]
