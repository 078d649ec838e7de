"""The discovery model of the paper (eq. 2, sections 4.1-4.3) and the losses of one step.

- :class:`ShiftBlock` f_phi: Asyrp's small time-dependent block on h with K output heads,
  each zero-initialised so that x'_0 == x_0 at the start; or :class:`GlobalShift`, K
  orthonormal global vectors (GANLatentDiscovery's form, ``shift_form="global"``);
- :class:`Reconstructor` R_omega: (x_0, x'_0) -> K logits and a magnitude;
- :func:`build_discriminator` D_psi: guided-diffusion's ``EncoderUNetModel`` with the DM's
  configuration, on clean images (t = 0);
- :func:`discovery_step`: one training step (generator side, then the discriminator),
  back-propagating through the sampling chain node by node or with vanilla autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .backbone import build_encoder, shift_h
from .chain import Budget, Tape, backprop_chain, record_chain, run_chain
from .distributed import average_gradients, mean_over_ranks
from .guard import check_finite, check_finite_grads
from .precision import in_float32
from .presets import RECONSTRUCTOR_HEADS, DiscoveryConfig, UNetConfig
from .sampling import Shift, Shifted, ddim_step, sample_ddim
from .schedule import Steps, shifted_steps


def mean_square_offdiag(m: torch.Tensor) -> torch.Tensor:
    """Mean of m_kj squared over k != j of a square matrix [K, K] (K >= 2), differentiable."""
    K = len(m)
    return (m.square().sum() - m.diagonal().square().sum()) / (K * (K - 1))


def change_similarity(changes: torch.Tensor, floor: float | torch.Tensor = 1e-12,
                      by_sign: bool = False) -> torch.Tensor:
    """Cosine similarity of what two directions do to the same image at the same sign,
    averaged over images and signs: changes [K, B, 2, ...] -> [K, K] (1 on the diagonal
    unless a direction changes nothing). Directions that collapsed onto one effect score
    near +-1; distinct effects near 0. A change whose norm is below ``floor`` is divided by
    ``floor`` instead, so that it counts as (nearly) no change rather than as a direction.

    ``by_sign`` keeps the signs apart, [2, K, K] (averaged over images only). Averaged over
    signs, a direction whose +s and -s changes are alike (unsigned) scores 0 against every
    signed direction, whatever the two do: its +s and -s terms cancel.
    """
    unit = F.normalize(changes.flatten(3), dim=3, eps=floor)
    per_sign = torch.einsum("kbsp,jbsp->skj", unit, unit) / changes.shape[1]
    return per_sign if by_sign else per_sign.mean(0)


class ShiftBlock(nn.Module):
    """f_phi(h, emb, t, k): an input 1x1 conv, the DM's timestep embedding added,
    GroupNorm + SiLU, then the k-th of K independent 1x1 output convolutions.

    h [B, C, H, W], emb [B, E] (the UNet's ``time_embed`` output), t [B] (unused: the block
    sees the timestep through emb), k [B] long -> dh [B, C, H, W] (a :data:`hdisc.sampling.Shift`).
    Heads start at zero (``head_init_std=0``) unless asked otherwise.

    ``norm`` sets each sample's output size relative to h's root mean square (rms):
    ``free`` (the paper) leaves it as the heads make it; ``cap`` rescales outputs larger than
    ``rms`` x rms(h) down to it, keeping their direction; ``fixed`` rescales every output to
    exactly ``rms`` x rms(h) (unit directions, as GANLatentDiscovery's), so the heads start
    random (std ``head_init_std`` or 1/sqrt(C)) and x'_0 != x_0 from the first step.
    """

    def __init__(self, channels: int, emb_dim: int, K: int, head_init_std: float = 0.0,
                 norm: str = "free", rms: float = 0.0):
        super().__init__()
        self.K = K
        self.norm, self.rms = norm, rms
        if norm == "fixed" and not head_init_std:
            head_init_std = channels ** -0.5
        self.inp = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv2d(channels, channels, 1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, channels))
        self.mid = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU())
        self.head_weight = nn.Parameter(torch.randn(K, channels, channels) * head_init_std)
        self.head_bias = nn.Parameter(torch.zeros(K, channels))

    def head_overlap(self) -> torch.Tensor:
        """Mean squared cosine similarity between the K heads (weights and bias flattened),
        over pairs k != j: 0 when the heads are orthogonal, 1 when all are parallel."""
        flat = F.normalize(torch.cat([self.head_weight.flatten(1), self.head_bias], 1), dim=1, eps=1e-12)
        return mean_square_offdiag(flat @ flat.T)

    def _features(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """What every head reads: h [B, C, H, W] and emb [B, E] -> [B, C, H, W]."""
        return self.mid(self.inp(h) + self.emb(emb)[:, :, None, None])

    def raw_sizes(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Each head's output before the norm, over ``rms`` x rms(h), for h [N, C, H, W] and
        emb [N, E]: [K, N]. Above 1 a ``cap`` clips it to the cap, whatever its size."""
        a = self._features(h, emb)
        out = torch.einsum("nchw,koc->knohw", a, self.head_weight) + self.head_bias[:, None, :, None, None]
        return (out.pow(2).mean((2, 3, 4)) / h.pow(2).mean((1, 2, 3))).sqrt() / self.rms

    @torch.no_grad()
    def rescale_heads(self, h: torch.Tensor, emb: torch.Tensor, target: float) -> torch.Tensor:
        """Scale each head (weights and bias) so that its smallest :meth:`raw_sizes` over h
        [N, C, H, W], emb [N, E] is ``target`` (>= 1), and return the smallest sizes before
        [K]. With ``norm="cap"`` or ``"fixed"`` a head's edits do not depend on its scale
        while its outputs stay at or above the cap, so the edits stay as they were; but Adam
        turns a head by about lr / |head| a step, so heads that have grown far past the cap
        (15-59 times on the committed cpu model, research/rescale_heads.py) have all but stopped
        turning."""
        if self.norm == "free" or target < 1:
            raise ValueError(f"rescale_heads keeps the edits only with shift_norm 'cap' or 'fixed' and target >= 1, "
                             f"got shift_norm {self.norm!r}, target {target}")
        smallest = self.raw_sizes(h, emb).amin(1)
        scale = target / smallest
        self.head_weight.mul_(scale[:, None, None])
        self.head_bias.mul_(scale[:, None])
        return smallest

    def forward(self, h: torch.Tensor, emb: torch.Tensor, t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        a = self._features(h, emb)
        # index_select, not head_weight[k]: the latter's backward accumulates repeated k in a
        # thread-dependent order (the effect penalty repeats every k), so runs differed on 2 threads
        out = (torch.einsum("bchw,boc->bohw", a, self.head_weight.index_select(0, k))
               + self.head_bias[k][:, :, None, None])
        if self.norm == "free":
            return out
        # the squared ratio, so that a zero output (zero heads) gets a finite gradient
        ratio2 = self.rms ** 2 * h.pow(2).mean((1, 2, 3)) / (out.pow(2).mean((1, 2, 3)) + 1e-12)
        if self.norm == "cap":
            ratio2 = ratio2.clamp(max=1.0)
        return out * ratio2.sqrt()[:, None, None, None]


class GlobalShift(nn.Module):
    """K global directions in h-space, orthonormal (GANLatentDiscovery's direction matrix, its
    QR form): dh = ``rms`` x rms(h) x sqrt(D) u_k for the k-th of K orthonormal unit vectors
    u [K, D] (D = C H W) of a learned matrix, at every shifted step and for every image, so
    rms(dh) = ``rms`` x rms(h) per unit strength. h [B, C, H, W], emb and t unused, k [B] long
    -> dh [B, C, H, W] (a :data:`hdisc.sampling.Shift`). Starts random (std 1: orthonormalised
    anyway), so x'_0 != x_0 from the first step, as in that paper."""

    norm = "fixed"

    def __init__(self, h_shape: tuple[int, int, int], K: int, rms: float, seed: int = 0):
        super().__init__()
        D = h_shape[0] * h_shape[1] * h_shape[2]
        if K > D:
            raise ValueError(f"shift_form 'global' needs K <= the size of h ({D}), got K={K}")
        self.K, self.rms, self.h_shape = K, rms, tuple(h_shape)
        self.matrix = nn.Parameter(torch.randn(D, K, generator=torch.Generator().manual_seed(seed)))

    def directions(self) -> torch.Tensor:
        """The orthonormal directions u [K, D] (a differentiable QR of the matrix)."""
        q, r = torch.linalg.qr(self.matrix)
        return (q * torch.sign(torch.diagonal(r))).T  # the sign fixed, so u_k follows its column

    def head_overlap(self) -> torch.Tensor:
        """0: the directions are orthonormal by construction (``lambda_orth`` has nothing to do)."""
        return self.matrix.new_zeros(())

    def forward(self, h: torch.Tensor, emb: torch.Tensor, t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        u = self.directions().index_select(0, k.to(self.matrix.device)).view(len(k), *self.h_shape)
        scale = self.rms * h.pow(2).mean((1, 2, 3)).sqrt() * u[0].numel() ** 0.5
        return u.to(h.dtype) * scale[:, None, None, None]


class Reconstructor(nn.Module):
    """R_omega: the two images concatenated on channels -> (K logits, one magnitude).

    ``small`` (32 px): a LeNet-style CNN as in GANLatentDiscovery's MNIST setting;
    otherwise a ResNet-18-like network (BasicBlocks 2-2-2-2, widths 64-512).
    ``with_difference`` adds x_shift - x0 as a third group of channels (not in the paper).
    ``head`` reads the last feature map: ``pool`` averages it over positions (ResNet-18's
    reading), ``spatial`` with one convolution as large as the map (``image_size`` px images
    only), which keeps where on the image a change is, as the last 5x5 convolution of
    GANLatentDiscovery's LeNet does on its 5x5 map. The layers before the head are the same
    in both, so a pooled reader's body loads into a spatial one.
    x0, x_shift [B, C, H, W] -> logits [B, K], s_hat [B].
    """

    def __init__(self, channels: int, K: int, small: bool, with_difference: bool = False,
                 head: str = "pool", image_size: int = 0):
        super().__init__()
        if head not in RECONSTRUCTOR_HEADS:
            raise ValueError(f"Reconstructor head must be one of {', '.join(RECONSTRUCTOR_HEADS)}, got {head!r}")
        if head == "spatial" and image_size < 8:
            raise ValueError(f"Reconstructor head 'spatial' needs the image_size (at least 8 px), got {image_size}")
        self.with_difference = with_difference
        n_in = (3 if with_difference else 2) * channels
        if small:
            layers = [
                nn.Conv2d(n_in, 64, 3, padding=1), nn.ReLU(),
                nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
                nn.Conv2d(128, 256, 4, stride=2, padding=1), nn.BatchNorm2d(256), nn.ReLU(),
                nn.Conv2d(256, 256, 4, stride=2, padding=1), nn.BatchNorm2d(256), nn.ReLU(),
            ]
            width = 256
        else:
            layers = [nn.Conv2d(n_in, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
            cin = 64
            for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
                cin = cout
            width = 512
        self.head_at = len(layers)
        """Where the head starts in ``body``: the layers before it are the same for both heads."""
        if head == "pool":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            with torch.no_grad():  # the side of the last map, from a zero image through the layers so far
                side = nn.Sequential(*layers).eval()(torch.zeros(1, n_in, image_size, image_size)).shape[-1]
            layers += [nn.Conv2d(width, width, side), nn.BatchNorm2d(width), nn.ReLU(), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.logits = nn.Linear(width, K)
        self.magnitude = nn.Linear(width, 1)

    def load_body(self, other: Reconstructor) -> None:
        """Take ``other``'s layers before its head (a reader of either head, the same input
        and size) and its output layers; this reader's own head keeps its weights. Raises
        RuntimeError if anything else differs."""
        def before_head(key: str, net: Reconstructor) -> bool:
            return not key.startswith("body.") or int(key.split(".")[1]) < net.head_at

        theirs = {k: v for k, v in other.state_dict().items() if before_head(k, other)}
        missing, unexpected = self.load_state_dict(theirs, strict=False)
        if unexpected or any(before_head(k, self) for k in missing):
            raise RuntimeError(f"the reconstructors differ before their heads: missing {missing}, "
                               f"unexpected {unexpected}")

    def forward(self, x0: torch.Tensor, x_shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [x0, x_shift, x_shift - x0] if self.with_difference else [x0, x_shift]
        f = self.body(torch.cat(parts, dim=1))
        return self.logits(f), self.magnitude(f).squeeze(1)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.main(x) + self.skip(x))


class Discriminator(nn.Module):
    """D_psi: guided-diffusion's ``EncoderUNetModel`` on clean images; x [B, C, H, W] -> logits [B]."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.net = build_encoder(cfg, out_channels=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device)).squeeze(1)


class DiscoveryModel(nn.Module):
    """The three trainable parts for one DM: shift block, reconstructor, discriminator."""

    def __init__(self, unet_cfg: UNetConfig, cfg: DiscoveryConfig):
        super().__init__()
        c_mid = unet_cfg.h_shape[0]
        if cfg.shift_form == "global":
            self.shift = GlobalShift(unet_cfg.h_shape, cfg.K, cfg.shift_rms)
        else:
            self.shift = ShiftBlock(c_mid, 4 * unet_cfg.model_channels, cfg.K, cfg.head_init_std,
                                    cfg.shift_norm, cfg.shift_rms)
        self.reconstructor = Reconstructor(unet_cfg.in_channels, cfg.K, small=unet_cfg.image_size <= 32,
                                           with_difference=cfg.reconstructor_input == "pair+difference",
                                           head=cfg.reconstructor_head, image_size=unet_cfg.image_size)
        self.discriminator = Discriminator(unet_cfg)


def make_optimizers(model: DiscoveryModel, cfg: DiscoveryConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the generator side (shift block at ``lr_shift``, reconstructor at ``lr``)
    and Adam for the discriminator (at ``lr``)."""
    opt_g = torch.optim.Adam([{"params": model.shift.parameters(), "lr": cfg.lr_shift},
                              {"params": model.reconstructor.parameters(), "lr": cfg.lr}])
    return opt_g, torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr)


@dataclass
class StepStats:
    """What one training step measured (floats for logging)."""

    l_ce: float
    l_mag: float
    l_adv: float
    l_d: float
    d_real: float
    d_fake: float
    acc: float
    mag_err: float
    overlap: float


def draw_shifts(batch: int, K: int, S: float, generator: torch.Generator, s_min: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """k ~ Uniform{0..K-1} [B] and s [B] uniform over [-S, -s_min] and [s_min, S] (the
    paper: s_min = 0, s ~ Uniform[-S, S])."""
    k = torch.randint(K, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator) * 2 - 1
    s = u.sign() * (s_min + u.abs() * (S - s_min))
    return k, s


def effect_similarity(unet: nn.Module, shift: Shift, cfg: DiscoveryConfig, steps: Steps, x_T: torch.Tensor,
                      i: int, by_sign: bool = False) -> torch.Tensor:
    """What the K directions do alike in one step, [K, K] ([2, K, K] ``by_sign``): :func:`change_similarity` of the
    changes each direction makes to the model's prediction, at strengths -S/2 and +S/2, at node
    ``i`` of the plain chain from x_T [n, C, H, W] (a shifted node, t_i > t_stop).

    At one node the change of eps is proportional to that of the predicted x_0, so this is a
    one-step stand-in for the similarity of the final edits (``research/effect_proxy.py``
    measures how good a stand-in on the committed cpu model: results/mnist32-cpu/effect_overlap.json).
    Gradients reach ``shift`` through one UNet pass on 2 K n rows with h shifted (not eq. 2's
    asymmetric step: only the shifted prediction is needed); the chain up to node i and the
    plain prediction run without gradients. Changes below 1e-3 of the prediction's norm count
    as no change: with zero heads (the paper's start) only the rounding between two batch
    sizes' arithmetic is left, and dividing it by its own norm would turn noise into unit
    vectors and its gradient into noise over a tiny norm. It computes in float32 even inside
    a bfloat16 autocast region: there the changes drowned in the prediction's rounding, which
    is alike for every direction (probes e1 and e2, trained so, lowered the overlap from 0.17
    to 0.16 in 300 steps, where d2 in float32 lowered it from 0.137 to 0.067). Its gradient,
    taken inside such a region, meets autocast in a few backward formulas and stays within 1%
    of float32's.
    """
    if int(steps.t[i]) <= cfg.t_stop:
        raise ValueError(f"effect_overlap needs a shifted node (t > t_stop = {cfg.t_stop}); node {i} has "
                         f"t = {int(steps.t[i])}: pick i < {shifted_steps(steps, cfg.t_stop)}")
    with in_float32(x_T.device):  # under bfloat16 autocast the changes drown in rounding
        with torch.no_grad():
            x = x_T
            for j in range(i):
                x = ddim_step(unet, x, steps, j, cfg.clip)
            t = steps.t[i].expand(len(x)).to(x.device)
            eps = unet(x, t)
        K, n = cfg.K, len(x)
        k = torch.arange(K, device=x.device).repeat_interleave(n).repeat(2)  # rows ordered (sign, direction, image)
        s = torch.tensor([-cfg.S / 2, cfg.S / 2], device=x.device, dtype=x.dtype).repeat_interleave(K * n)
        t = t.repeat(2 * K)
        with shift_h(unet, lambda h, emb: s.view(-1, 1, 1, 1) * shift(h, emb, t, k)):
            eps_shift = unet(x.repeat(2 * K, 1, 1, 1), t)
        change = (eps_shift - eps.repeat(2 * K, 1, 1, 1)).view(2, K, n, -1).permute(1, 2, 0, 3)  # [K, n, 2, pixels]
        return change_similarity(change, 1e-3 * eps.flatten(1).norm(dim=1).mean(), by_sign)


def effect_overlap(unet: nn.Module, shift: Shift, cfg: DiscoveryConfig, steps: Steps, x_T: torch.Tensor,
                   i: int) -> torch.Tensor:
    """How alike the K directions act, as a differentiable number in [0, 1] (0: every pair acts
    orthogonally, 1: all act alike): the mean squared off-diagonal :func:`effect_similarity`
    (same arguments), for each sign apart and then averaged (``cfg.div_signs="apart"``), or of
    the similarity averaged over signs (``"averaged"``, probes d0-d4). The averaged form has a
    loophole: a direction that does the same at +s and -s scores 0 against every signed one,
    so the penalty pays directions to lose their sign. ``lambda_orth`` penalises alike head
    weights; this (``lambda_div``) penalises alike effects."""
    if cfg.div_signs == "averaged":
        return mean_square_offdiag(effect_similarity(unet, shift, cfg, steps, x_T, i))
    per_sign = effect_similarity(unet, shift, cfg, steps, x_T, i, by_sign=True)
    return torch.stack([mean_square_offdiag(m) for m in per_sign]).mean()


def discriminator_loss(discriminator: nn.Module, real_x: torch.Tensor, fake_x: torch.Tensor, cfg: DiscoveryConfig
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D's loss on real images x_0 and (detached) shifted ones x'_0 [B, C, H, W]: the paper's
    binary cross-entropy or the hinge loss (``cfg.adv_loss``), plus ``cfg.r1_gamma`` / 2 times
    the mean squared norm of D's gradient at the real images (R1). Returns (loss, D's logits on
    the real and on the shifted images, [B] each, detached)."""
    if cfg.r1_gamma:
        real_x = real_x.detach().requires_grad_(True)
    real, fake = discriminator(real_x), discriminator(fake_x)
    if cfg.adv_loss == "hinge":
        loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    else:
        loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if cfg.r1_gamma:
        (grad,) = torch.autograd.grad(real.sum(), real_x, create_graph=True)
        loss = loss + cfg.r1_gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()
    return loss, real.detach(), fake.detach()


def discovery_step(unet: nn.Module, model: DiscoveryModel, cfg: DiscoveryConfig, steps: Steps,
                   z: torch.Tensor, k: torch.Tensor, s: torch.Tensor,
                   opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                   method: str = "chain", fuse: bool = True, freeze_shift: bool = False,
                   overlap_at: int = 0, budget: Budget = 0) -> StepStats:
    """One training step of the paper's method on noise z [B, C, H, W].

    Generator side (shift block + reconstructor) minimises
    ``CE(logits, k) + lambda_mag |s_hat - s| + lambda_adv BCE(D(x'_0), real)`` (the hinge
    form ``-D(x'_0)`` with ``adv_loss="hinge"``; plus
    ``lambda_orth`` times the heads' mean squared cosine similarity, not in the paper), with the
    gradient reaching the shift block through the whole DDIM chain, by ``method``
    ``"chain"`` (node by node, flat memory) or ``"vanilla"`` (autograd through all steps).
    Then the discriminator takes one step on x_0 (real) vs detached x'_0 (fake)
    (:func:`discriminator_loss`). The chain
    clips x_0 when ``cfg.clip``. A non-finite loss or gradient raises
    :class:`hdisc.guard.NonFiniteError` before that side's optimiser step.

    With ``freeze_shift`` the shift block stays as it is: no gradient crosses the chain,
    and the generator side's step trains the reconstructor alone.

    With ``lambda_div`` the generator's loss adds ``lambda_div`` times :func:`effect_overlap` on
    the first ``cfg.div_images`` rows of z at node ``overlap_at`` (the training loop draws it).

    ``budget`` (chain only; :mod:`hdisc.chain`) is the memory in bytes the chain may spend on
    keeping steps' graphs instead of recomputing them (0: the paper's flat-memory chain,
    ``math.inf``: every graph, ``"auto"``: half the free memory); the gradients are the same.
    With ``fuse`` and nothing to keep (budget 0, or a frozen shift block), the plain chain for
    x_0 and the no-grad recording pass run as one batch [z; z]: the encoder sees 2B images,
    the decoder 3B.
    """
    if method not in ("chain", "vanilla"):
        raise ValueError(f"method must be 'chain' or 'vanilla', got {method!r}")
    clip = cfg.clip
    eps_model = Shifted(unet, model.shift, k, s, cfg.t_stop)

    def step(x: torch.Tensor, i: int) -> torch.Tensor:
        return ddim_step(eps_model, x, steps, i, clip)

    opt_g.zero_grad(set_to_none=True)
    if method == "vanilla":
        with torch.no_grad():
            x0 = sample_ddim(unet, z, steps, clip=clip, disable=True)
        with torch.set_grad_enabled(not freeze_shift):
            x_shift = run_chain(step, z, len(steps))
    else:
        keep = 0 if freeze_shift else budget  # no gradient crosses a frozen chain: nothing to keep
        if fuse and keep == 0:  # rows [:B] run the plain chain, rows [B:] the shifted one
            both = Shifted(unet, model.shift, k, s, cfg.t_stop, references=len(z))
            joint = record_chain(lambda x, i: ddim_step(both, x, steps, i, clip), torch.cat([z, z]), len(steps))
            x0, tape = joint.nodes[-1][:len(z)], Tape([n[len(z):] for n in joint.nodes])
        else:
            with torch.no_grad():
                x0 = sample_ddim(unet, z, steps, clip=clip, disable=True)
            tape = record_chain(step, z, len(steps), keep)
        x_shift = tape.nodes[-1].detach().requires_grad_(not freeze_shift)
    logits, s_hat = model.reconstructor(x0, x_shift)
    l_ce = F.cross_entropy(logits, k)
    l_mag = (s_hat - s).abs().mean()
    d_fake_logits = model.discriminator(x_shift)
    l_adv = (-d_fake_logits.mean() if cfg.adv_loss == "hinge"
             else F.binary_cross_entropy_with_logits(d_fake_logits, torch.ones_like(d_fake_logits)))
    loss = l_ce + cfg.lambda_mag * l_mag + cfg.lambda_adv * l_adv
    if cfg.lambda_orth and not freeze_shift:
        loss = loss + cfg.lambda_orth * model.shift.head_overlap()
    overlap = torch.zeros((), device=z.device)
    if cfg.lambda_div and not freeze_shift:
        overlap = effect_overlap(unet, model.shift, cfg, steps, z[:cfg.div_images], overlap_at)
        loss = loss + cfg.lambda_div * overlap
    loss.backward()
    if method == "chain" and not freeze_shift:
        backprop_chain(step, tape, x_shift.grad)
    g_params = (*model.reconstructor.parameters(),) if freeze_shift else (
        *model.shift.parameters(), *model.reconstructor.parameters())
    average_gradients(g_params)  # under torchrun: the whole batch's gradient on every rank
    check_finite("generator loss", mean_over_ranks(loss.detach()))
    check_finite_grads("shift block and reconstructor", g_params)
    opt_g.step()

    opt_d.zero_grad(set_to_none=True)
    l_d, real, fake = discriminator_loss(model.discriminator, x0, x_shift.detach(), cfg)
    l_d.backward()
    average_gradients(model.discriminator.parameters())
    check_finite("discriminator loss", mean_over_ranks(l_d.detach()))
    check_finite_grads("discriminator", model.discriminator.parameters())
    opt_d.step()
    stats = torch.stack([l_ce, l_mag, l_adv, l_d, torch.sigmoid(real).mean(), torch.sigmoid(fake).mean(),
                         (logits.argmax(1) == k).float().mean(), (s_hat - s).abs().mean(), overlap]).detach()
    return StepStats(*mean_over_ranks(stats).tolist())  # the whole batch's, as one process logs them


@torch.no_grad()
def reconstructor_accuracy(unet: nn.Module, model: DiscoveryModel, cfg: DiscoveryConfig, steps: Steps,
                           n: int, batch: int, generator: torch.Generator,
                           device: str | torch.device = "cpu", progress: bool | None = None) -> dict[str, float]:
    """RCA (paper 5.5): accuracy of R on ``n`` fresh pairs with random k and s.

    Also returns the mean magnitude error |s_hat - s|. R is evaluated in eval mode, on
    chains that clip x_0 as ``cfg.clip`` says.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or isinstance(batch, bool) or not isinstance(
            batch, int) or batch < 1:
        raise ValueError(f"reconstructor_accuracy: n={n!r} pairs and batch={batch!r} must be ints >= 1 (e.g. n_rca "
                         "1000): nothing was scored")
    shape = (unet.in_channels, unet.image_size, unet.image_size)
    was_training = model.training
    model.eval()
    correct, mag_err = 0.0, 0.0
    for start in tqdm(range(0, n, batch), desc="RCA", disable=progress is False):
        b = min(batch, n - start)
        z = torch.randn((b, *shape), generator=generator).to(device)
        k, s = draw_shifts(b, cfg.K, cfg.S, generator, cfg.s_min)
        k, s = k.to(device), s.to(device)
        x0 = sample_ddim(unet, z, steps, clip=cfg.clip, disable=True)
        xs = sample_ddim(Shifted(unet, model.shift, k, s, cfg.t_stop), z, steps, clip=cfg.clip, disable=True)
        logits, s_hat = model.reconstructor(x0, xs)
        correct += (logits.argmax(1) == k).sum().item()
        mag_err += (s_hat - s).abs().sum().item()
    model.train(was_training)
    return {"rca": correct / n, "mag_err": mag_err / n, "n": n}
