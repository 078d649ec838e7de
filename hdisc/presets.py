"""Every setting of hdisc, as frozen dataclasses, and the table of presets.

A preset is addressed by dataset (``mnist32``, ``shapes32``, ``anime64``, ``celebahq128``,
``afhq128``) and scale:

- ``paper``: the paper's settings (arXiv 2310.09912, appendix tables 3 and 4), for a GPU;
- ``cpu``: scaled down for a 2-core CPU (DM pretraining measured 3.7 h on one core here);
- ``smoke``: tiny, for tests and CI; its results mean nothing.

Settings the paper does not give (DM learning rate, batch, steps, EMA, normalisation
variant) are chosen here and recorded in the preset, so every run names what it used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from .schedule import DEFAULT, Schedule

Config = TypeVar("Config")  # a config dataclass

DATASETS = ("mnist32", "shapes32", "anime64", "celebahq128", "afhq128")
SCALES = ("paper", "cpu", "smoke")
MAX_H_SIDE = 16
"""The largest side of h (the middle block, which always holds an attention layer) a preset
may have: attention over side^2 tokens costs batch x heads x side^4 x 4 bytes, 0.27 GB for a
batch of 64 at 16 (at 64 it would be 17 GB)."""


def _check(owner: str, field: str, value: float, *, low: float, high: float = math.inf, fix: str,
           open_low: bool = False, open_high: bool = False, integer: bool = False) -> None:
    """Raise a ValueError naming ``owner.field``, its valid range and a fix unless
    ``value`` is a finite number in the range (``open_*`` excludes that end); with
    ``integer``, a whole number (an int, or a float with no fraction)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    ok = ok and (not integer or float(value).is_integer())
    if not ok:
        lo, hi = ("(" if open_low else "[") + f"{low:g}", f"{high:g}" + (")" if open_high else "]")
        kind = "a whole number in " if integer else ""
        raise ValueError(f"{owner}.{field}={value!r} is out of range: valid {kind}{lo}, {hi}; {fix}")


MAX_K = 4096
"""The most directions a discovery model may have (K heads of C x C weights each)."""
MAX_S = 100.0
"""The largest strength S (the paper uses 2 and 5; beyond this the chain overflows)."""
MAX_BATCH = 16384
"""The largest batch of one training step (split a larger one over processes)."""
MAX_STEPS = 10**8


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

    def __post_init__(self) -> None:
        side = self.image_size // 2 ** (len(self.channel_mult) - 1)
        if side > MAX_H_SIDE:
            raise ValueError(
                f"UNetConfig: the middle block of a {self.image_size}-px model with channel_mult "
                f"{self.channel_mult} sits at {side}x{side}; its attention over {side * side} tokens does not "
                f"fit in memory. Valid: a side of at most {MAX_H_SIDE}; add levels to channel_mult.")

    def sample_batch(self, budget_bytes: float = 2**30) -> int:
        """The largest sampling batch whose attention matrices (every attention layer's
        heads x tokens^2 floats, the middle block's included) stay within ``budget_bytes``."""
        sides = {self.image_size // 2 ** (len(self.channel_mult) - 1)}
        sides |= set(self.attention_resolutions)
        per_image = sum(self.num_heads * s ** 4 * 4 for s in sides)
        return max(1, int(budget_bytes // per_image))

    @property
    def h_shape(self) -> tuple[int, int, int]:
        """Shape of h (the middle block's output) for one image: (C, H, W)."""
        side = self.image_size // 2 ** (len(self.channel_mult) - 1)
        return (self.model_channels * self.channel_mult[-1], side, side)


@dataclass(frozen=True)
class DMTrainConfig:
    """Pretraining of the diffusion model (not given by the paper: chosen here). ``schedule``
    is the noise schedule it trains with; it is stored with the weights."""

    lr: float
    batch: int
    steps: int
    ema: float
    warmup: int = 500
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    schedule: Schedule = DEFAULT

    def __post_init__(self) -> None:
        _check("DMTrainConfig", "lr", self.lr, low=0, open_low=True, fix="e.g. 2e-4")
        _check("DMTrainConfig", "batch", self.batch, low=1, high=MAX_BATCH, integer=True,
               fix="images per step (split a larger batch over processes with torchrun)")
        _check("DMTrainConfig", "steps", self.steps, low=1, high=MAX_STEPS, integer=True,
               fix="a positive number of training steps")
        _check("DMTrainConfig", "ema", self.ema, low=0, high=1, open_high=True, fix="e.g. 0.9999")
        _check("DMTrainConfig", "warmup", self.warmup, low=0, high=MAX_STEPS, integer=True, fix="0 for no warm-up")
        _check("DMTrainConfig", "grad_clip", self.grad_clip, low=0, open_low=True, fix="e.g. 1.0")
        _check("DMTrainConfig", "checkpoint_every", self.checkpoint_every, low=1, high=MAX_STEPS, integer=True,
               fix="e.g. 500")


RECONSTRUCTOR_HEADS = ("pool", "spatial")
"""How the reconstructor reads its last feature map (:class:`hdisc.discovery.Reconstructor`)."""


@dataclass(frozen=True)
class DiscoveryConfig:
    """The discovery model of the paper's eq. 2 and its training (paper table 4).

    ``t_stop``: steps with t > t_stop are shifted. ``M``: DDIM steps of the chain.
    ``lr`` is Adam's for the reconstructor and discriminator, ``lr_shift`` for the shift
    block (the paper uses one rate, 1e-3, for all three). ``reconstructor_input``: ``pair``
    (the paper: both images on channels) or ``pair+difference`` (their difference too);
    ``reconstructor_head`` how it reads its last feature map: ``pool`` (averaged over
    positions) or ``spatial`` (one convolution over the whole map: where a change is counts).
    ``lambda_orth`` weighs a penalty on the heads' squared cosine similarity (0 in the paper);
    ``lambda_div`` one on how alike the directions change the model's prediction (their
    effects, :func:`hdisc.discovery.effect_overlap`, measured on ``div_images`` noises of each
    batch at one shifted node; 0 in the paper), for +s and -s apart (``div_signs="apart"``)
    or on their average (``"averaged"``, which rewards directions that lose their sign).
    ``shift_norm`` ``free`` (the paper), ``cap`` or ``fixed`` with ``shift_rms``: the shift
    block's output is left free, capped at, or set to ``shift_rms`` times h's root mean
    square (see :class:`hdisc.discovery.ShiftBlock`), so that |dh| <= |s| shift_rms rms(h).
    ``shift_form`` ``block`` (the paper's time-dependent shift block) or ``global`` (K
    orthonormal vectors of h, GANLatentDiscovery's form; needs ``shift_norm="fixed"``).
    ``adv_loss`` is the adversarial loss, ``bce`` (the paper's) or ``hinge``, and ``r1_gamma``
    the weight of an R1 penalty (gamma / 2 times D's squared gradient at real images, Mescheder
    et al. 2018) that lets the discriminator keep up (0 in the paper).
    ``clip`` clips the predicted x_0 to [-1, 1] in every DDIM step; ``head_init_std`` is the
    std of the shift heads at initialisation (0: the paper's zero heads); a training run
    writes its checkpoint every ``checkpoint_every`` steps. Training (and RCA) draw |s|
    uniform in [``s_min``, S] with a random sign. From step ``freeze_shift_after`` on (0:
    never, the paper) the shift block stays as it is and only the reconstructor and
    discriminator train, on edits of those fixed directions: R catches up with directions that
    no longer move, and no gradient crosses the chain, so such a step costs less (probe r2:
    13.8 s a step at batch 64 on one thread here, against 22.7 s for a joint step in
    results/mnist32-cpu/precision.json). Invalid values raise a
    ValueError that names the field, its valid range and a fix.
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
    reconstructor_head: str = "pool"
    lambda_mag: float = 0.1
    lambda_adv: float = 0.1
    lambda_orth: float = 0.0
    shift_norm: str = "free"
    shift_rms: float = 0.0
    clip: bool = True
    head_init_std: float = 0.0
    checkpoint_every: int = 50
    s_min: float = 0.0
    freeze_shift_after: int = 0
    lambda_div: float = 0.0
    div_images: int = 2
    div_signs: str = "apart"
    shift_form: str = "block"
    adv_loss: str = "bce"
    r1_gamma: float = 0.0

    def __post_init__(self) -> None:
        name = "DiscoveryConfig"
        _check(name, "K", self.K, low=1, high=MAX_K, integer=True, fix="the number of directions, e.g. 32")
        _check(name, "S", self.S, low=0, high=MAX_S, open_low=True, fix="the largest strength |s|, e.g. 5")
        # M and t_stop are checked against the DM's own schedule where a chain is built on it
        # (hdisc.dm.DM.edit_steps): M <= T, and a t_stop that shifts at least one step
        _check(name, "M", self.M, low=1, high=MAX_STEPS, integer=True,
               fix="the DDIM steps of the chain, e.g. 20 (at most the DM's T)")
        _check(name, "t_stop", self.t_stop, low=0, high=MAX_STEPS, integer=True,
               fix="steps with t > t_stop are shifted (the paper: 400 of T = 1000)")
        _check(name, "batch", self.batch, low=1, high=MAX_BATCH, integer=True,
               fix="pairs per step (split a larger batch over processes with torchrun)")
        _check(name, "steps", self.steps, low=1, high=MAX_STEPS, integer=True,
               fix="a positive number of training steps")
        for f in ("lr", "lr_shift"):
            _check(name, f, getattr(self, f), low=0, open_low=True, fix="e.g. 1e-3")
        for f in ("lambda_mag", "lambda_adv", "lambda_orth", "lambda_div", "head_init_std"):
            _check(name, f, getattr(self, f), low=0, fix="0 switches the term off")
        _check(name, "checkpoint_every", self.checkpoint_every, low=1, high=MAX_STEPS, integer=True, fix="e.g. 50")
        _check(name, "s_min", self.s_min, low=0, high=self.S, open_high=True,
               fix="the smallest |s| drawn in training; 0 draws s uniform in [-S, S] (the paper)")
        _check(name, "freeze_shift_after", self.freeze_shift_after, low=0, high=MAX_STEPS, integer=True,
               fix="the step from which only R and D train; 0 trains the shift block in every step")
        for f in ("lambda_orth", "lambda_div"):
            if getattr(self, f) > 0 and self.K < 2:
                raise ValueError(f"DiscoveryConfig.{f}={getattr(self, f)} penalises overlap between "
                                 f"directions and needs K >= 2 (got K={self.K}): set {f}=0 or K >= 2")
        _check(name, "div_images", self.div_images, low=1, high=MAX_BATCH, integer=True,
               fix="how many of each batch's noises lambda_div's overlap is measured on, e.g. 2")
        if self.div_signs not in ("apart", "averaged"):
            raise ValueError(f"DiscoveryConfig.div_signs must be 'apart' or 'averaged', got {self.div_signs!r}: "
                             "'apart' measures lambda_div's overlap for +s and -s separately (the default), "
                             "'averaged' on their average (probes d0-d4)")
        _check(name, "shift_rms", self.shift_rms, low=0, fix="0 with shift_norm 'free'")
        if self.adv_loss not in ("bce", "hinge"):
            raise ValueError(f"DiscoveryConfig.adv_loss must be 'bce' (the paper's) or 'hinge', got {self.adv_loss!r}")
        _check(name, "r1_gamma", self.r1_gamma, low=0, high=1e6,
               fix="the weight of the R1 penalty on D's gradient at real images; 0 switches it off (the paper)")
        if self.shift_form not in ("block", "global"):
            raise ValueError(f"DiscoveryConfig.shift_form must be 'block' or 'global', got {self.shift_form!r}: "
                             "'block' is the paper's time-dependent shift block, 'global' K orthonormal vectors")
        if self.shift_form == "global" and self.shift_norm != "fixed":
            raise ValueError(f"DiscoveryConfig.shift_form 'global' has unit directions: set shift_norm 'fixed' and "
                             f"shift_rms > 0 (the size of dh over rms(h) at s = 1), got shift_norm "
                             f"{self.shift_norm!r}")
        if self.shift_norm not in ("free", "cap", "fixed"):
            raise ValueError(f"shift_norm must be 'free', 'cap' or 'fixed', got {self.shift_norm!r}")
        if (self.shift_norm != "free") != (self.shift_rms > 0):
            raise ValueError(f"shift_norm {self.shift_norm!r} needs shift_rms > 0 ('free' takes 0), "
                             f"got {self.shift_rms}")
        if self.reconstructor_input not in ("pair", "pair+difference"):
            raise ValueError(f"reconstructor_input must be 'pair' or 'pair+difference', "
                             f"got {self.reconstructor_input!r}")
        if self.reconstructor_head not in RECONSTRUCTOR_HEADS:
            raise ValueError(f"DiscoveryConfig.reconstructor_head must be one of {', '.join(RECONSTRUCTOR_HEADS)}, "
                             f"got {self.reconstructor_head!r}: 'pool' averages the reconstructor's last feature "
                             "map over positions, 'spatial' reads the whole map")


@dataclass(frozen=True)
class DataConfig:
    """Where images come from: ``mnist`` (embedded), ``shapes`` (generated, :mod:`hdisc.shapes`)
    or ``folder`` (a ``data_dir``)."""

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

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.scale}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_PAPER_UNET = {
    # the paper's 16.9M-parameter MNIST DM is guided-diffusion's UNetModel default, without
    # scale-shift normalisation (16,884,097 parameters); the paper says nothing of it for the others
    "mnist32": UNetConfig(32, 1, 64, (1, 2, 2, 4), 2, use_scale_shift_norm=False),
    # shapes32 is not in the paper: its mnist32 DM with three colour channels
    "shapes32": UNetConfig(32, 3, 64, (1, 2, 2, 4), 2, use_scale_shift_norm=False),
    "anime64": UNetConfig(64, 3, 64, (1, 2, 4, 8), 2, (16,), 4),
    "celebahq128": UNetConfig(128, 3, 128, (1, 1, 2, 3, 4), 2, (16,), 4, dropout=0.1),
    "afhq128": UNetConfig(128, 3, 128, (1, 1, 2, 3, 4), 2, (16,), 4, dropout=0.1),
}
_PAPER_DISCOVERY = {
    "mnist32": DiscoveryConfig(K=32, S=5, M=20, t_stop=400, batch=128, steps=3000),
    # seven known factors (one categorical): K=16 leaves room for each sign and for spares
    "shapes32": DiscoveryConfig(K=16, S=5, M=20, t_stop=400, batch=128, steps=3000),
    "anime64": DiscoveryConfig(K=128, S=2, M=40, t_stop=400, batch=128, steps=12000),
    "celebahq128": DiscoveryConfig(K=256, S=2, M=40, t_stop=500, batch=64, steps=15000),
    "afhq128": DiscoveryConfig(K=256, S=2, M=40, t_stop=400, batch=64, steps=15000),
}
_PAPER_DM = {
    "mnist32": DMTrainConfig(lr=2e-4, batch=128, steps=100_000, ema=0.9999),
    "shapes32": DMTrainConfig(lr=2e-4, batch=128, steps=100_000, ema=0.9999),
    "anime64": DMTrainConfig(lr=1e-4, batch=64, steps=300_000, ema=0.9999),
    "celebahq128": DMTrainConfig(lr=1e-4, batch=32, steps=500_000, ema=0.9999),
    "afhq128": DMTrainConfig(lr=1e-4, batch=32, steps=500_000, ema=0.9999),
}


def _scaled(dataset: str, scale: str) -> Preset:
    paper_unet = _PAPER_UNET[dataset]
    size, chans = paper_unet.image_size, paper_unet.in_channels
    data = DataConfig({"mnist32": "mnist", "shapes32": "shapes"}.get(dataset, "folder"), size, chans)
    paper_disc = _PAPER_DISCOVERY[dataset]
    if scale == "paper":
        return Preset(dataset, scale, data, paper_unet, _PAPER_DM[dataset], paper_disc,
                      sample_steps=paper_disc.M)
    if scale == "cpu" and dataset == "shapes32":
        # the paper's topology (h at 4x4 behind three downsamplings, two res blocks a level) at
        # half its width: 4.4M parameters, h 128x4x4; 0.70 s a step at batch 32 on one thread in
        # float32 (results/mnist32-cpu/step_speed.json). A first DM on the linear schedule (7,500
        # steps in bfloat16 autocast, 4,500 in float32) sampled coloured backgrounds: at t = 999 its
        # predicted x_0 is the noise error over sqrt(abar) = 0.0064, and its mean colour was off by
        # 3.3 (research/high_t.py); it is not released. A second, noise-predicting on Stable
        # Diffusion's scaled-linear schedule (abar_999 = 0.0047: the error amplified 15x, not
        # 156x), still sampled coloured backgrounds at step 4,500. This DM predicts v on that
        # schedule (Salimans and Ho 2022): near t = T it outputs x_0 itself, so no error is
        # amplified. 8,000 steps in bfloat16 autocast at two threads (book/findings.md)
        unet = UNetConfig(size, chans, 32, (1, 2, 2, 4), 2)
        dm = DMTrainConfig(lr=5e-4, batch=32, steps=8_000, ema=0.9995,
                           schedule=Schedule(1000, "scaled_linear", 0.00085, 0.012, "v"))
        disc = dataclasses.replace(paper_disc, M=10, batch=32, steps=1_000, checkpoint_every=100)
        return Preset(dataset, scale, data, unet, dm, disc, sample_steps=20)
    if scale == "cpu":
        # 32 channels (GroupNorm(32) needs multiples of 32), one res block per level.
        levels = (1, 2, 2) if size == 32 else (1, 2, 2, 2)
        unet = UNetConfig(size, chans, 32, levels, 1)
        dm = DMTrainConfig(lr=1e-3, batch=32, steps=12_000, ema=0.9995)
        # Discovery (issue 11; every probe in results/mnist32-cpu/probes.json, plotted in the
        # train chapter): RCA alone rewarded directions that wreck the digit (M=5, free
        # shifts: RCA 0.86, no direction passing the interpretability evaluation). Capping
        # |dh| at 0.1 rms(h), drawing |s| >= 1 and weighing the magnitude loss 0.5 keeps the
        # digit; caps of 0.2 and 0.3 raised RCA faster but lost it (9% and 0% passing). M=10
        # halves the paper's chain; batch 64 gives the reconstructor four times the pairs of
        # batch 16. The committed model is the last stage of a warm-started lineage (its
        # init_from, results/mnist32-cpu/lineage_stage2.json): 9,850 steps of the M=5 recipe,
        # 1,200 steps of this one at batch 16 on this CPU, then these 1,000 steps at batch 64
        # on an H100 (427 s there, the first 400 steps beside three other probes; 22.7 s a step
        # on one thread of this CPU, results/mnist32-cpu/precision.json). Longer runs
        # trade the digit for RCA (probe g3 at step 2,200: RCA 0.60, 38% passing). The
        # reconstructor is not what holds RCA down: with the directions frozen at step 1,000,
        # 100 more steps of R alone (freeze_shift_after, probe r2) left RCA at 0.48.
        disc = dataclasses.replace(paper_disc, M=10, batch=64, steps=1_000, lr_shift=3e-3,
                                   reconstructor_input="pair+difference", lambda_orth=1.0, lambda_mag=0.5,
                                   shift_norm="cap", shift_rms=0.1, s_min=1.0, checkpoint_every=200)
        return Preset(dataset, scale, data, unet, dm, disc, sample_steps=20)
    # smoke: a model that runs in milliseconds, for tests only; enough levels to bring h to
    # at most MAX_H_SIDE (16x16 at every size)
    levels = (1, 2) + (2,) * max(0, (size // MAX_H_SIDE).bit_length() - 2)
    unet = UNetConfig(size, chans, 32, levels, 1)
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


_KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def read_as(kind: type, value: str) -> object:
    """``value`` (text) read as ``kind``: booleans as true/false, ints as whole numbers only
    (``2.5`` is not an int; ``1e3`` is), floats and strings as written. Raises ValueError."""
    if kind is bool:
        if value.lower() not in ("true", "false"):
            raise ValueError(value)
        return value.lower() == "true"
    if kind is int:
        number = float(value)
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    return kind(value)


def override(config: Config, assignments: Iterable[str]) -> Config:
    """``config`` (a config dataclass) with ``FIELD=VALUE`` assignments applied, each value
    read as the field's declared type (:func:`read_as`: an int field refuses ``2.5``, a float
    field takes ``2.5`` even where the preset wrote ``5``); the config's own checks then run.
    An unknown field or an unreadable value raises a ValueError naming the valid ones."""
    declared = {f.name: f.type for f in dataclasses.fields(config)}
    fields = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or key not in declared:
            raise ValueError(f"{type(config).__name__}: cannot set {item!r}; write FIELD=VALUE with FIELD one of "
                             f"{', '.join(declared)}")
        kind = _KINDS.get(str(declared[key]), type(getattr(config, key)))
        try:
            fields[key] = read_as(kind, value)
        except ValueError:
            raise ValueError(f"{type(config).__name__}.{key}: cannot read {value!r} as {kind.__name__}"
                             + (" (a whole number)" if kind is int else "")) from None
    return dataclasses.replace(config, **fields)


def config_diff(have: object, want: object) -> dict[str, tuple]:
    """Fields where two dataclasses of one type differ: {field: (have, want)}."""
    return {f.name: (getattr(have, f.name), getattr(want, f.name)) for f in dataclasses.fields(have)
            if getattr(have, f.name) != getattr(want, f.name)}
