"""hdisc: unsupervised discovery of interpretable directions in the h-space of diffusion models.

A reproduction of arXiv 2310.09912 on guided-diffusion's UNet. Modules, in the order data
flows: ``presets`` -> ``schedule`` -> ``dm`` / ``backbone`` -> ``sampling`` -> ``chain`` /
``discovery`` -> ``training`` -> ``directions`` / ``metrics`` -> ``widgets``.

``hdisc.explore("models/mnist32-cpu/directions.pt")`` opens the slider explorer in any
notebook (imported on first use, so ``import hdisc`` stays light).
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "explore":
        from .widgets import explore

        return explore
    raise AttributeError(f"module 'hdisc' has no attribute {name!r}")
