"""Every setting of hdisc, as frozen dataclasses, and the table of presets.

A preset is addressed by dataset (``mnist32``, ``anime64``, ``celebahq128``, ``afhq128``)
and scale:

- ``paper``: the paper's settings (arXiv 2310.09912, appendix tables 3 and 4), for a GPU;
- ``cpu``: scaled down for a 2-core CPU (DM pretraining measured 3.7 h on one core here);
- ``smoke``: tiny, for tests and CI; its results mean nothing.

Settings the paper does not give (DM learning rate, batch, steps, EMA, normalisation
variant) are chosen here and recorded in the preset, so every run names what it used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

DATASETS = ("mnist32", "anime64", "celebahq128", "afhq128")
SCALES = ("paper", "cpu", "smoke")


@dataclass(frozen=True)
class UNetConfig:
    """Arguments of guided-diffusion's ``UNetModel`` (noise prediction, fixed variance).

    ``attention_resolutions`` are feature-map sizes in pixels (guided-diffusion's flag
    ``--attention_resolutions 16``), converted to downsampling factors by the backbone.
    """

    image_size: int
    in_channels: int
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_resolutions: tuple[int, ...] = ()
    num_heads: int = 4
    dropout: float = 0.0
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False

    @property
    def h_shape(self) -> tuple[int, int, int]:
        """Shape of h (the middle block's output) for one image: (C, H, W)."""
        side = self.image_size // 2 ** (len(self.channel_mult) - 1)
        return (self.model_channels * self.channel_mult[-1], side, side)


@dataclass(frozen=True)
class DMTrainConfig:
    """Pretraining of the diffusion model (not given by the paper: chosen here)."""

    lr: float
    batch: int
    steps: int
    ema: float
    warmup: int = 500
    grad_clip: float = 1.0
    checkpoint_every: int = 500


@dataclass(frozen=True)
class DiscoveryConfig:
    """The discovery model of the paper's eq. 2 and its training (paper table 4).

    ``t_stop``: steps with t > t_stop are shifted. ``M``: DDIM steps of the chain.
    ``lr`` is Adam's for the reconstructor and discriminator, ``lr_shift`` for the shift
    block (the paper uses one rate, 1e-3, for all three). ``reconstructor_input``: ``pair``
    (the paper: both images on channels) or ``pair+difference`` (their difference too).
    ``lambda_orth`` weighs a penalty on the heads' squared cosine similarity (0 in the paper).
    ``shift_norm`` ``free`` (the paper), ``cap`` or ``fixed`` with ``shift_rms``: the shift
    block's output is left free, capped at, or set to ``shift_rms`` times h's root mean
    square (see :class:`hdisc.discovery.ShiftBlock`), so that |dh| <= |s| shift_rms rms(h).
    """

    K: int
    S: float
    M: int
    t_stop: int
    batch: int
    steps: int
    lr: float = 1e-3
    lr_shift: float = 1e-3
    reconstructor_input: str = "pair"
    lambda_mag: float = 0.1
    lambda_adv: float = 0.1
    lambda_orth: float = 0.0
    shift_norm: str = "free"
    shift_rms: float = 0.0

    def __post_init__(self) -> None:
        if self.shift_norm not in ("free", "cap", "fixed"):
            raise ValueError(f"shift_norm must be 'free', 'cap' or 'fixed', got {self.shift_norm!r}")
        if (self.shift_norm != "free") != (self.shift_rms > 0):
            raise ValueError(f"shift_norm {self.shift_norm!r} needs shift_rms > 0 ('free' takes 0), "
                             f"got {self.shift_rms}")
        if self.reconstructor_input not in ("pair", "pair+difference"):
            raise ValueError(f"reconstructor_input must be 'pair' or 'pair+difference', "
                             f"got {self.reconstructor_input!r}")


@dataclass(frozen=True)
class DataConfig:
    """Where images come from: ``mnist`` (embedded) or ``folder`` (a ``data_dir``)."""

    source: str
    image_size: int
    channels: int


@dataclass(frozen=True)
class Preset:
    """One named configuration: dataset x scale."""

    dataset: str
    scale: str
    data: DataConfig
    unet: UNetConfig
    dm: DMTrainConfig
    discovery: DiscoveryConfig
    sample_steps: int = 20
    diffusion_steps: int = field(default=1000)

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.scale}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_PAPER_UNET = {
    "mnist32": UNetConfig(32, 1, 64, (1, 2, 2, 4), 2),
    "anime64": UNetConfig(64, 3, 64, (1, 2, 4, 8), 2, (16,), 4),
    "celebahq128": UNetConfig(128, 3, 128, (1, 1, 2, 3, 4), 2, (16,), 4, dropout=0.1),
    "afhq128": UNetConfig(128, 3, 128, (1, 1, 2, 3, 4), 2, (16,), 4, dropout=0.1),
}
_PAPER_DISCOVERY = {
    "mnist32": DiscoveryConfig(K=32, S=5, M=20, t_stop=400, batch=128, steps=3000),
    "anime64": DiscoveryConfig(K=128, S=2, M=40, t_stop=400, batch=128, steps=12000),
    "celebahq128": DiscoveryConfig(K=256, S=2, M=40, t_stop=500, batch=64, steps=15000),
    "afhq128": DiscoveryConfig(K=256, S=2, M=40, t_stop=400, batch=64, steps=15000),
}
_PAPER_DM = {
    "mnist32": DMTrainConfig(lr=2e-4, batch=128, steps=100_000, ema=0.9999),
    "anime64": DMTrainConfig(lr=1e-4, batch=64, steps=300_000, ema=0.9999),
    "celebahq128": DMTrainConfig(lr=1e-4, batch=32, steps=500_000, ema=0.9999),
    "afhq128": DMTrainConfig(lr=1e-4, batch=32, steps=500_000, ema=0.9999),
}


def _scaled(dataset: str, scale: str) -> Preset:
    paper_unet = _PAPER_UNET[dataset]
    size, chans = paper_unet.image_size, paper_unet.in_channels
    data = DataConfig("mnist" if dataset == "mnist32" else "folder", size, chans)
    paper_disc = _PAPER_DISCOVERY[dataset]
    if scale == "paper":
        return Preset(dataset, scale, data, paper_unet, _PAPER_DM[dataset], paper_disc,
                      sample_steps=paper_disc.M)
    if scale == "cpu":
        # 32 channels (GroupNorm(32) needs multiples of 32), one res block per level.
        levels = (1, 2, 2) if size == 32 else (1, 2, 2, 2)
        unet = UNetConfig(size, chans, 32, levels, 1)
        dm = DMTrainConfig(lr=1e-3, batch=32, steps=12_000, ema=0.9995)
        # Fewer DDIM steps and a smaller batch so a step takes 1.7 s here on average
        # (wall_s / steps in models/mnist32-cpu/train.json). Short probes
        # (scripts/probe_discovery.py, results/mnist32-cpu/probes.json):
        # the paper's recipe sat at chance for ~275 steps (shared/NOTES.md's probe); a faster
        # shift block, the difference image for R, and a penalty on parallel heads brought the
        # cross-entropy to 3.24 (chance 3.47) by step 200. At batch 16 the paper's 3k steps x 128
        # pairs would take 24k steps; 12k steps see half as many pairs. The run may stop earlier
        # once RCA plateaus (a run's step budget is not part of its identity: it resumes).
        disc = dataclasses.replace(paper_disc, M=5, batch=16, steps=12_000, lr_shift=3e-3,
                                   reconstructor_input="pair+difference", lambda_orth=1.0)
        return Preset(dataset, scale, data, unet, dm, disc, sample_steps=20)
    # smoke: a model that runs in milliseconds, for tests only.
    unet = UNetConfig(size, chans, 32, (1, 2), 1)
    dm = DMTrainConfig(lr=1e-3, batch=2, steps=4, ema=0.9, warmup=2, checkpoint_every=2)
    disc = dataclasses.replace(paper_disc, K=4, M=4, batch=2, steps=4)
    return Preset(dataset, scale, data, unet, dm, disc, sample_steps=4)


def get_preset(dataset: str, scale: str = "cpu") -> Preset:
    """The preset for ``dataset`` at ``scale``; unknown names raise with the valid ones."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown preset scale {scale!r}: choose one of {', '.join(SCALES)}")
    return _scaled(dataset, scale)


def departures(preset: Preset) -> dict[str, dict]:
    """Every discovery setting where ``preset`` differs from the paper's: {field: {ours, paper}}."""
    paper = _PAPER_DISCOVERY[preset.dataset]
    return {f.name: {"ours": getattr(preset.discovery, f.name), "paper": getattr(paper, f.name)}
            for f in dataclasses.fields(DiscoveryConfig)
            if getattr(preset.discovery, f.name) != getattr(paper, f.name)}


def config_diff(have: object, want: object) -> dict[str, tuple]:
    """Fields where two dataclasses of one type differ: {field: (have, want)}."""
    return {f.name: (getattr(have, f.name), getattr(want, f.name)) for f in dataclasses.fields(have)
            if getattr(have, f.name) != getattr(want, f.name)}
