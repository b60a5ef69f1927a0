"""The metric names and their direction (light: the report reads them without torch)."""

METRICS = ("psnr", "ssim", "ms_ssim", "clip_score", "fid", "is")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "clip_score": True,
                    "fid": False, "is": True}
