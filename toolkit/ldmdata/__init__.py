"""ldmdata: build, version and attack benchmark datasets for latent-diffusion image editing.

The package root imports nothing: each stage imports only the rooms it runs (and DVC re-runs a
stage only when one of those changes). Open any version of a dataset with
:func:`ldmdata.publish.open_dataset`.
"""

__version__ = "0.1.0"
