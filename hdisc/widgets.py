"""Jupyter widgets: the slider explorer of directions and the MOS annotation widget.

Both are plain ipywidgets; their state changes run the same functions the notebooks
call, so a test can drive them without a browser (set ``.value``, read the image).
"""

from __future__ import annotations

import getpass
import json
import os
import re
from pathlib import Path

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from .backbone import load_dm
from .data import held_out_images
from .direction_set import DirectionSet
from .directions import invert, ranked
from .files import project_path, write_json
from .presets import DATASETS, DataConfig, get_preset
from .training import load_directions
from .viz import grid, png_bytes


class Explorer:
    """Pick a source of directions, a direction, a strength in [-S, S] and a seed (or a real
    image): the original and the edited image update live. ``widget`` is the ipywidgets box.

    ``dirs``: the learned directions (:class:`hdisc.direction_set.DirectionSet` on their
    training chain). ``sources``: other sets to offer beside them, {name: DirectionSet}
    (e.g. :func:`hdisc.baselines.every_method`'s PCA, Jacobian, supervised and random
    directions). ``order``: the learned directions in the order the menu lists them (e.g. by
    how much they change the image). ``real``: images [N, C, H, W] in [-1, 1], inverted with
    ``invert_steps`` DDIM steps when first shown (and edited on that chain, with s rescaled
    by :meth:`DirectionSet.on`).
    """

    def __init__(self, unet: nn.Module, dirs: DirectionSet, *, order: list[int] | None = None,
                 real: torch.Tensor | None = None, invert_steps: int = 100, scale: int = 6,
                 sources: dict[str, DirectionSet] | None = None):
        self.unet, self.dirs, self.scale = unet, dirs, scale
        self.invert_steps = unet.steps(invert_steps)
        self.real, self._inverted = real, {}
        order = list(range(dirs.K)) if order is None else order
        # every source of directions: {name: (set, [(menu label, k), ...])}, the learned ones first
        self.sources = {"learned": (dirs, [(f"k = {k}", k) for k in order])}
        for name, other in (sources or {}).items():
            self.sources[name] = (other, [(other.label(k), k) for k in range(other.K)])
        self.source_menu = W.Dropdown(options=list(self.sources), value="learned", description="directions")
        self.direction = W.Dropdown(options=self.sources["learned"][1], value=order[0], description="direction")
        self.source_menu.observe(lambda _: self._switch_source(), names="value")
        self.strength = W.FloatSlider(value=0.0, min=-dirs.S, max=dirs.S, step=dirs.S / 20, description="strength",
                                      continuous_update=False, readout_format=".2f")
        starts = ["seed"] + (["real image"] if real is not None else [])
        self.source = W.ToggleButtons(options=starts, value="seed", description="start from")
        self.seed = W.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed")
        self.index = W.IntSlider(value=0, min=0, max=max(len(real) - 1, 0) if real is not None else 0,
                                 description="real image", disabled=real is None)
        self.image = W.Image(format="png")
        self.caption = W.HTML()
        for control in (self.direction, self.strength, self.source, self.seed, self.index):
            control.observe(lambda _: self.update(), names="value")
        self.widget = W.VBox([W.HBox([self.source_menu, self.direction, self.source]), self.strength,
                              W.HBox([self.seed, self.index]), self.image, self.caption])
        self.update()

    def _switch_source(self) -> None:
        """List the chosen source's directions in the direction menu, select its first, redraw."""
        options = self.sources[self.source_menu.value][1]
        self._switching = True  # the menu passes through other values (None among them) meanwhile
        try:
            self.direction.options = options
            self.direction.value = options[0][1]
        finally:
            self._switching = False
        self.update()

    def start(self) -> torch.Tensor:
        """x_T [1, C, H, W] for the current seed or (inverted) real image."""
        if self.source.value == "real image":
            i = self.index.value
            if i not in self._inverted:
                self._inverted[i] = invert(self.unet, self.real[i:i + 1], self.invert_steps)[0]
            return self._inverted[i]
        size = self.unet.image_size
        gen = torch.Generator().manual_seed(self.seed.value)
        return torch.randn((1, self.unet.in_channels, size, size), generator=gen)

    def render(self) -> torch.Tensor:
        """[original, edited] images [2, C, H, W] for the current controls."""
        x_T = self.start()
        dirs = self.sources[self.source_menu.value][0]
        if self.source.value == "real image":
            dirs = dirs.on(self.invert_steps)  # the strength keeps the size it has on the directions' chain
        return dirs.edit(self.unet, torch.cat([x_T, x_T]), self.direction.value,
                         torch.tensor([0.0, self.strength.value]))

    def update(self) -> None:
        """Recompute the edit and show it."""
        if getattr(self, "_switching", False) or self.direction.value is None:
            return
        self.image.value = png_bytes(grid(self.render(), nrow=2), self.scale)
        label = dict((k, lab) for lab, k in self.sources[self.source_menu.value][1])[self.direction.value]
        self.caption.value = (f"left: original; right: {self.source_menu.value} direction {label} "
                              f"at strength {self.strength.value:+.2f}")

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def explore(directions: str | os.PathLike, dm: str | os.PathLike | None = None, *,
            real: str | os.PathLike | torch.Tensor | None = None, n_real: int = 8, n_rank: int = 16,
            **kwargs) -> Explorer:
    """One call for any notebook: the explorer for a direction model file (``directions.pt``;
    a relative path is taken from the project root, whatever folder the notebook runs in).

    ``dm``: the diffusion model it was trained on; by default ``dm_ema.pt`` beside the
    direction file. The menu lists the directions by change x realism on ``n_rank`` noises
    (:func:`hdisc.directions.ranked`; 0: in index order). ``real``: images to start from as
    well as seeds: a dataset name (``"mnist32"``, ``"shapes32"``: ``n_real`` held-out images), a
    folder of images (its first ``n_real``, read as :func:`hdisc.data.held_out_images` reads a
    folder dataset; fewer raise) or a tensor [N, C, H, W] in [-1, 1]. Other keyword
    arguments go to :class:`Explorer`.
    """
    directions = project_path(directions)  # relative paths: from the project root, as the notebooks' are
    dm = directions.parent / "dm_ema.pt" if dm is None else project_path(dm)
    if not (dm.is_file() or dm.is_dir()):
        raise FileNotFoundError(f"no diffusion model at {dm}: pass dm=PATH, the DM the directions in "
                                f"{directions} were trained on")
    unet = load_dm(dm)
    model, cfg = load_directions(directions, dm=unet)
    dirs = DirectionSet.of(model.shift, cfg, unet)
    order = ranked(unet, dirs, model.discriminator, n_rank).order if n_rank else None
    if isinstance(real, str) and real in DATASETS:
        real = held_out_images(get_preset(real, "smoke").data, None, n_real)
    elif real is not None and not isinstance(real, torch.Tensor):  # a folder, read as the folder datasets are
        real = held_out_images(DataConfig("folder", unet.image_size, unet.in_channels), real, n_real)
    return Explorer(unet, dirs, order=order, real=real, **kwargs)


_ASSESSOR = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class MosAnnotator:
    """The MOS study of paper 5.5 as a widget: for each direction an assessor sees a panel
    (several examples, each across strengths in [-S, S]) and marks it 1 (every example moves
    smoothly, the change is the same across examples and easy to name) or 0.

    Every mark is written at once to ``out_dir/<assessor>.json`` (atomic write), so a closed
    notebook loses nothing; reopening continues where the assessor stopped.
    ``panels``: {k: uint8 grid [H, W, C]} in the order to show.
    """

    QUESTION = ("Mark 1 only if every row changes smoothly from left to right, the change is the "
                "same in every row, and you could name it; otherwise 0.")

    def __init__(self, panels: dict[int, np.ndarray], out_dir: str | os.PathLike, assessor: str | None = None,
                 model_id: str = "", scale: int = 4):
        assessor = assessor or getpass.getuser()
        if not _ASSESSOR.match(assessor):
            raise ValueError(f"assessor name {assessor!r} must be 1-64 letters, digits, '_', '.' or '-' "
                             "(it names the file the marks are saved in)")
        self.panels, self.keys, self.scale = panels, list(panels), scale
        self.path = Path(out_dir) / f"{assessor}.json"
        self.record = {"assessor": assessor, "model": model_id, "marks": {}}
        if self.path.exists():
            self.record["marks"] = load_marks(self.path, model_id)
        self.image = W.Image(format="png")
        self.label = W.HTML()
        self.yes = W.Button(description="1: interpretable", button_style="success")
        self.no = W.Button(description="0: not", button_style="danger")
        self.back = W.Button(description="back")
        self.yes.on_click(lambda _: self.mark(1))
        self.no.on_click(lambda _: self.mark(0))
        self.back.on_click(lambda _: self.show(max(self.position - 1, 0)))
        self.widget = W.VBox([W.HTML(f"<b>{self.QUESTION}</b>"), self.label, self.image,
                              W.HBox([self.yes, self.no, self.back])])
        unmarked = [i for i, k in enumerate(self.keys) if str(k) not in self.record["marks"]]
        self.show(unmarked[0] if unmarked else len(self.keys))

    def show(self, position: int) -> None:
        """Show the panel at ``position`` (past the end: the study is finished)."""
        self.position = position
        done = len(self.record["marks"])
        if position >= len(self.keys):
            self.label.value = f"All {len(self.keys)} directions marked; saved to {self.path}."
            self.image.value = b""
            return
        k = self.keys[position]
        prev = self.record["marks"].get(str(k))
        self.label.value = (f"direction {k} ({position + 1} of {len(self.keys)}; {done} marked"
                            + (f"; your mark: {prev}" if prev is not None else "") + ")")
        self.image.value = png_bytes(self.panels[k], self.scale)

    def mark(self, value: int) -> None:
        """Record ``value`` for the shown direction, save, and move on."""
        if self.position >= len(self.keys):
            return
        self.record["marks"][str(self.keys[self.position])] = value
        write_json(self.path, self.record)
        self.show(self.position + 1)

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def load_marks(path: Path, model_id: str) -> dict[str, int]:
    """The marks of an existing annotation file; one made for another model raises."""
    blob = json.loads(path.read_text())
    if blob.get("model", "") != model_id:
        raise ValueError(f"{path} holds marks for model {blob.get('model')!r}, not {model_id!r}: "
                         "choose another out_dir or assessor name")
    return dict(blob.get("marks", {}))
