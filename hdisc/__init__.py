"""hdisc: unsupervised discovery of interpretable directions in the h-space of diffusion models.

A reproduction of arXiv 2310.09912 on guided-diffusion's UNet. Modules, in the order data
flows: ``presets`` -> ``backbone`` -> ``schedule`` / ``sampling`` -> ``training`` -> ``metrics``.
"""

__version__ = "0.1.0"
