"""Dataset builders: inpainting triplets, img2img pairs, super-resolution pairs."""

from ldmdata.build.run import build_dataset
from ldmdata.build.settings import TASK_DEFAULTS, TASKS

__all__ = ["TASKS", "TASK_DEFAULTS", "build_dataset"]
