"""Directions scored against known factors (shapes32): which factor does each direction move?

The protocol of DisCo (Ren et al. 2022) for directions in a frozen generator, with the
metrics of the disentanglement literature (DCI of Eastwood and Williams 2018, a MIG-style
gap), read from edits instead of from an encoder:

1. :func:`edit_factors`: every direction of a :class:`hdisc.direction_set.DirectionSet`
   edits N noises at n strengths over [-S, S]; every edit's factors are read from its
   pixels (:mod:`hdisc.factors`): values [K, N, n, F] and the shape reader's confidence.
2. :func:`changes`: each factor's change from the unedited sample (s = 0), divided by the
   width of the factor's range (the shape: 1 where the read shape differs); orientation
   and hue are circular and wrap.
3. :func:`importance`: how much direction k moves factor f *the same way in every image*:
   the mean over noises of the least-squares slope of the change against s, times S,
   in absolute value. A direction that moves a factor one way in one image and the other
   way in the next scores near zero on it: consistency across examples is what the paper's
   raters ask of a direction. The shape, which has no sign, counts the share of edits at
   the largest strengths that change it.
4. :func:`dci`, :func:`gaps`, :func:`purity`: disentanglement (does each direction move one
   factor?), completeness (is each factor moved by one direction?), the gap between each
   factor's best and second-best direction over the best, and per factor its best
   direction's share of importance on it.
5. :func:`truth_scores` bundles them with 95% bootstrap intervals over the noises, each
   factor's importance read in units of what random directions do to it
   (:func:`random_floor`): in raw units, a factor that every edit moves would make every
   direction look devoted to it, random ones included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .baselines import (
    collect_h,
    jacobian_directions,
    matched_size,
    median_change,
    pca_directions,
    supervised_directions,
)
from .direction_set import DirectionSet, FixedDirections
from .factors import ShapeNet, read_factors
from .metrics import fd
from .shapes import CONTINUOUS, FACTORS, RANGES, SHAPES, SYMMETRY

Reader = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``read(images [B, 3, H, W]) -> (factor values [B, F], confidence [B])``."""


def factor_reader(net: ShapeNet) -> Reader:
    """The readers of :mod:`hdisc.factors` as one :data:`Reader` (the shape from ``net``)."""
    def read(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape, conf = net.read(images)
        return read_factors(images, shape), conf
    return read


@torch.no_grad()
def edit_factors(unet: nn.Module, dirs: DirectionSet, z: torch.Tensor, svals: torch.Tensor, read: Reader,
                 batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of every edit of noises z [N, C, H, W] along every direction of ``dirs`` at
    strengths ``svals`` [n] (include 0: the unedited sample): (values [K, N, n, F], the shape
    reader's confidence [K, N, n]), on the CPU."""
    K, N, n = dirs.K, len(z), len(svals)
    k = torch.arange(K).repeat_interleave(N * n)
    s = svals.repeat(K * N)
    x = z.repeat_interleave(n, 0).repeat(K, 1, 1, 1)
    values, conf = [], []
    for i in range(0, len(x), batch):
        images = dirs.edit(unet, x[i:i + batch], k[i:i + batch].to(z.device), s[i:i + batch].to(z))
        v, c = read(images.cpu())
        values.append(v)
        conf.append(c)
    return torch.cat(values).view(K, N, n, -1), torch.cat(conf).view(K, N, n)


def changes(values: torch.Tensor, zero: int) -> torch.Tensor:
    """Each factor's change [K, N, n, F] from strength index ``zero`` (s = 0), over the width of
    its range; orientation wraps modulo the unedited shape's symmetry, hue modulo 1; the shape
    column is 1 where the read shape differs from the unedited one. NaN where a reading is."""
    base = values[:, :, zero:zero + 1]
    diff = values - base
    widths = torch.tensor([1.0] + [RANGES[f][1] - RANGES[f][0] for f in CONTINUOUS])
    o, h = FACTORS.index("orientation"), FACTORS.index("hue")
    period = torch.tensor([360.0 / SYMMETRY[s] for s in SHAPES])[base[..., 0].nan_to_num(0).long()]
    diff[..., o] = torch.remainder(diff[..., o] + period / 2, period) - period / 2
    diff[..., h] = torch.remainder(diff[..., h] + 0.5, 1.0) - 0.5
    diff[..., 0] = (values[..., 0] != base[..., 0]).float()
    return diff / widths


def importance(delta: torch.Tensor, svals: torch.Tensor, S: float) -> torch.Tensor:
    """R [K, F] >= 0 from changes [K, N, n, F] (:func:`changes`) at strengths ``svals`` [n]:
    continuous factors |mean over noises of the slope of the change against s| x S; the
    shape: the share of edits at |s| = S that change it. NaN readings are left out."""
    s = svals.double()
    d = delta.double()
    ok = torch.isfinite(d)
    d0 = d.nan_to_num(0.0)
    w = ok.double()
    sw = (w * s[:, None]).sum(2) / w.sum(2).clamp_min(1)  # [K, N, F] mean s of the valid readings
    cov = (w * (s[:, None] - sw[:, :, None]) * d0).sum(2)
    var = (w * (s[:, None] - sw[:, :, None]) ** 2).sum(2).clamp_min(1e-12)
    slope = cov / var  # [K, N, F]
    valid = ok.any(2) & (w.sum(2) >= 2)
    mean_slope = (slope * valid).sum(1) / valid.sum(1).clamp_min(1)
    out = (mean_slope * S).abs()
    ends = s.abs() >= s.abs().max() - 1e-9
    flips = d[:, :, ends, 0]
    out[:, 0] = flips.nan_to_num(1.0).mean((1, 2))  # an edit with no shape left changed it
    return out.float()


def _entropy_normalised(p: torch.Tensor, dim: int) -> torch.Tensor:
    base = p.shape[dim]
    ent = -(p * p.clamp_min(1e-12).log()).sum(dim) / np.log(base)
    return ent


def dci(R: torch.Tensor) -> dict:
    """Disentanglement and completeness of an importance matrix R [K, F] (Eastwood and
    Williams 2018): per direction 1 - entropy (base F) of its importance over factors,
    averaged with weights by each direction's total importance; per factor 1 - entropy
    (base K) of its importance over directions, averaged over factors."""
    R = R.double().clamp_min(0)
    total = R.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0, "per_direction": [0.0] * len(R),
                "per_factor": [0.0] * R.shape[1]}
    p_dir = R / R.sum(1, keepdim=True).clamp_min(1e-12)
    d_k = 1 - _entropy_normalised(p_dir, 1)
    rho = R.sum(1) / total
    p_fac = R / R.sum(0, keepdim=True).clamp_min(1e-12)
    c_f = 1 - _entropy_normalised(p_fac, 0)
    moved = R.sum(0) > 0
    return {"disentanglement": float((rho * d_k).sum()), "completeness": float(c_f[moved].mean()) if moved.any()
            else 0.0, "per_direction": d_k.tolist(), "per_factor": c_f.tolist()}


def gaps(R: torch.Tensor) -> torch.Tensor:
    """Per factor, (best - second best direction's importance) / best: [F] in [0, 1] (0 where no
    direction moves it): a MIG-style gap on the importance matrix R [K, F]."""
    top = R.topk(min(2, len(R)), dim=0).values
    second = top[1] if len(top) > 1 else torch.zeros_like(top[0])
    return torch.where(top[0] > 0, (top[0] - second) / top[0].clamp_min(1e-12), torch.zeros_like(top[0]))


def purity(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per factor: its best direction [F] and that direction's share of its own importance
    on the factor [F]."""
    best = R.argmax(0)
    share = R / R.sum(1, keepdim=True).clamp_min(1e-12)
    return best, share[best, torch.arange(R.shape[1])]


def rank_correlation(delta: torch.Tensor, svals: torch.Tensor) -> torch.Tensor:
    """Spearman correlation [K, N, F] of each factor's change with s, per direction and noise
    (NaN where fewer than three readings, or the change is constant)."""
    n = len(svals)
    rs = torch.argsort(torch.argsort(svals)).double()
    d = delta.double()
    out = torch.full(d.shape[:2] + d.shape[3:], float("nan"), dtype=torch.float64)
    ok = torch.isfinite(d).all(2)
    ranks = torch.argsort(torch.argsort(d.nan_to_num(0), dim=2), dim=2).double()
    a = ranks - ranks.mean(2, keepdim=True)
    b = (rs - rs.mean()).view(1, 1, n, 1)
    den = a.pow(2).sum(2).sqrt() * b.pow(2).sum(2).sqrt()
    rho = (a * b).sum(2) / den.clamp_min(1e-12)
    constant = d.nan_to_num(0).amax(2) == d.nan_to_num(0).amin(2)
    out[ok & ~constant] = rho[ok & ~constant]
    return out.float()


def summarise(delta: torch.Tensor, svals: torch.Tensor, S: float, floor: torch.Tensor | None = None) -> dict:
    """The scores of one direction set from its changes [K, N, n, F]: the importance matrix,
    DCI, per-factor gaps, purity and the best direction's mean rank correlation with s.
    ``floor`` [F] (:func:`random_floor`) divides each factor's importance first."""
    R = importance(delta, svals, S) / (1 if floor is None else floor.clamp_min(1e-12))
    d = dci(R)
    best, share = purity(R)
    rho = rank_correlation(delta, svals)
    rho_best = torch.stack([torch.nanmean(rho[best[f], :, f]) for f in range(R.shape[1])])
    g = gaps(R)
    return {"importance": R.tolist(), "disentanglement": d["disentanglement"], "completeness": d["completeness"],
            "gap": dict(zip(FACTORS, g.tolist(), strict=True)), "mean_gap": float(g.mean()),
            "best_direction": dict(zip(FACTORS, best.tolist(), strict=True)),
            "purity": dict(zip(FACTORS, share.tolist(), strict=True)),
            "rank_correlation": dict(zip(FACTORS, rho_best.nan_to_num(0).tolist(), strict=True))}


REL = 0.5
"""The size every training-free family is built at: |dh| = REL rms(h) at s = 1 (a start for
:func:`hdisc.baselines.matched_size`)."""


def truth_families(unet: nn.Module, base: DirectionSet, net: ShapeNet, n_pca: int, seed: int,
                   device: str | torch.device = "cpu") -> tuple[dict[str, DirectionSet], torch.Tensor]:
    """The training-free families of shapes32 on ``base``'s chain, built with :data:`REL`: PCA
    of h over ``n_pca`` samples pooled over the shifted steps, the Jacobian's top singular
    vectors for the first sample at the first step (``base.K`` each), supervised directions
    from the factors read off the samples (one per shape against the rest, one per continuous
    factor's top quartile against its bottom one, the shapes projected out) and two random
    sets (``floor``: the unit of :func:`random_floor`; ``scored``). Returns them and the raw
    samples x_0 [n_pca, 3, 32, 32] of the noises."""
    shape = (unet.in_channels, unet.image_size, unet.image_size)
    z = torch.randn((n_pca, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    hs, x0 = collect_h(unet, z, base.steps, base.t_stop, clip=base.clip)
    K = base.K
    pca, _ = pca_directions(hs, min(K, n_pca))
    jac, _ = jacobian_directions(unet, z[:1], int(base.steps.t[0]), K, iters=10, seed=seed)
    kinds = net.read(x0)[0]
    factors = read_factors(x0, kinds)
    sup, names = supervised_directions(torch.stack(list(hs.values())).mean(0), kinds,
                                       {f: factors[:, FACTORS.index(f)] for f in CONTINUOUS}, SHAPES)
    h_shape = tuple(hs[int(base.steps.t[0])].shape[1:])

    def fixed(dirs: torch.Tensor, names: list[str]) -> DirectionSet:
        return base.with_shift(FixedDirections(dirs, REL), names=tuple(names))

    rand = {f"random ({role})": torch.randn((K, *h_shape), generator=torch.Generator().manual_seed(seed + i))
            for i, role in enumerate(("floor", "scored"), 1)}
    return {"PCA (pooled)": fixed(pca, [f"PC{k + 1}" for k in range(len(pca))]),
            "Jacobian (one image)": fixed(jac, [f"SV{k + 1}" for k in range(K)]),
            "supervised (read factors)": fixed(sup, names),
            **{name: fixed(r, [f"R{k}" for k in range(K)]) for name, r in rand.items()}}, x0


HEADLINE = ("disentanglement", "completeness", "mean_gap")
"""The numbers :func:`truth_scores` gives intervals for."""


def _zero(svals: torch.Tensor) -> int:
    if not (svals == 0).any():
        raise ValueError(f"scoring edits needs the unedited sample: svals must hold 0, got {svals.tolist()}")
    return int(torch.nonzero(svals == 0)[0])


def random_floor(values: torch.Tensor, svals: torch.Tensor, S: float) -> torch.Tensor:
    """Each factor's mean importance [F] over random directions' edits (values [K, N, n, F]):
    the unit in which :func:`truth_scores` reads every family's importance, so that a factor
    that any edit moves (the one the DM answers most) does not pass for a disentangled one."""
    return importance(changes(values, _zero(svals)), svals, S).mean(0)


def truth_scores(values: torch.Tensor, svals: torch.Tensor, S: float, floor: torch.Tensor | None = None,
                 n_boot: int = 200, seed: int = 0) -> dict:
    """:func:`summarise` of edits' factor values [K, N, n, F] (``svals`` must hold 0), each
    factor's importance in units of ``floor`` [F] (:func:`random_floor`; None: of the factor's
    range), with a 95% bootstrap interval over the noises for each :data:`HEADLINE` number."""
    delta = changes(values, _zero(svals))
    out = summarise(delta, svals, S, floor)
    unit = 1 if floor is None else floor.clamp_min(1e-12)
    gen = torch.Generator().manual_seed(seed)
    N = delta.shape[1]
    boots = {key: [] for key in HEADLINE}
    for _ in range(n_boot):
        idx = torch.randint(N, (N,), generator=gen)
        R = importance(delta[:, idx], svals, S) / unit
        d = dci(R)
        boots["disentanglement"].append(d["disentanglement"])
        boots["completeness"].append(d["completeness"])
        boots["mean_gap"].append(float(gaps(R).mean()))
    out["interval"] = {key: [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))] for key, v in boots.items()}
    out["n_noises"], out["svals"] = N, svals.tolist()
    return out


@torch.no_grad()
def compare_on_truth(unet: nn.Module, base: DirectionSet, net: ShapeNet, learned: DirectionSet | None = None, *,
                     n: int = 32, n_pca: int = 512, target: float = 0.05, seed: int = 0,
                     device: str | torch.device = "cpu", progress: bool | None = None
                     ) -> tuple[dict, dict[str, DirectionSet]]:
    """Every family of directions of shapes32 scored against the factors (issue 29's
    comparison): :func:`truth_families` on ``base``'s chain, and ``learned`` when given; each
    training-free set rescaled to equal image change (:func:`hdisc.baselines.matched_size`: its
    median edit at S/2 moves the image by ``target``, or by the learned set's own change when
    there is one); each direction edits ``n`` noises at 9 strengths over [-S, S]; every edit's
    factors read from its pixels and scored with :func:`truth_scores` in units of the first
    random set (:func:`random_floor`). Realism per set: the shape reader's confidence on the
    edits and FD-ShapeNet of edits at +-S on 8 noises against the raw samples. Returns the
    record ``{"K", "S", "target_change", "floor", "confidence_raw", "rows": [...]}`` and each
    family's directions at the size they were scored at ({method: set})."""
    sets, x0 = truth_families(unet, base, net, n_pca, seed, device)
    if learned is not None:
        sets = {"learned, as trained": learned, **sets}
        target = median_change(unet, learned, n=4, seed=seed + 20, device=device)
    svals = torch.linspace(-base.S, base.S, 9)
    z = torch.randn((n, *x0.shape[1:]), generator=torch.Generator().manual_seed(seed + 10)).to(device)
    read = factor_reader(net)
    rows, values, scaled = [], {}, {}
    for name, dirs in tqdm(sets.items(), desc="families", disable=progress is False):
        size, change = None, target
        if dirs is not learned:
            size, change = matched_size(unet, dirs, target, REL, n=4, seed=seed + 20, device=device)
            dirs = dirs.at_size(size)
        scaled[name] = dirs
        values[name], conf = edit_factors(unet, dirs.to(device), z, svals, read)
        ends = torch.cat([dirs.sweep(unet, z[:8], k, svals[[0, -1]]).flatten(0, 1).cpu() for k in range(dirs.K)])
        rows.append({"method": name, "rel": size, "median_change_half": change, "names": list(dirs.names),
                     "confidence_edits": float(conf.mean()), "fd_edits_vs_raw": fd(net.features, ends, x0)})
    floor = random_floor(values["random (floor)"], svals, base.S)
    for row in rows:
        row.update(truth_scores(values[row["method"]], svals, base.S, floor, seed=seed))
    return {"K": base.K, "S": base.S, "M": len(base.steps), "t_stop": base.t_stop, "n_noises": n, "n_pca": n_pca,
            "seed": seed, "target_change": target, "factors": list(FACTORS), "floor": floor.tolist(),
            "confidence_raw": float(net.read(x0)[1].mean()), "rows": rows}, scaled
