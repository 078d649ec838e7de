"""Directions in h-space found without training (Haas et al., arXiv 2303.11073), and random ones.

- :func:`pca_directions`: principal components of h over many samples, per timestep of
  the shifting interval and pooled over it (global directions), with their spectra;
- :func:`jacobian_directions`: for one image at one timestep, the top right singular
  vectors of the Jacobian of the noise prediction with respect to h, by subspace iteration
  with Jacobian-vector and vector-Jacobian products (:func:`top_singular`; never the full
  Jacobian);
- :func:`supervised_directions`: mean differences of h between samples with and without a
  label (digit classes from ``MnistNet``, stroke measures from Morpho-MNIST), and
  :func:`project_out` to remove one direction's component from another;
- :func:`random_directions`: the floor.

Every method returns directions [K, C, H, W]; :func:`every_method` wraps them in
:class:`hdisc.direction_set.FixedDirections`, each scaled to the same size relative to
rms(h), and in a :class:`hdisc.direction_set.DirectionSet` on the learned directions'
chain, so everything that edits with learned directions (the interpretability evaluation,
post-hoc RCA, the explorer) edits with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .backbone import capture_h, shift_h
from .direction_set import DirectionSet, FixedDirections
from .interpret import MEASURES, morphometry
from .sampling import sample_ddim
from .schedule import Steps


@torch.no_grad()
def collect_h(unet: nn.Module, z: torch.Tensor, steps: Steps, t_stop: int, batch: int = 100,
              clip: bool = True) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """h along the plain DDIM chains of noises z [N, C, H, W], at every step with t > t_stop:
    {t: h [N, C_h, H_h, W_h]}, and the samples those chains end in, x_0 [N, C, H, W]; on the CPU."""
    keep = [i for i in range(len(steps)) if steps.t[i] > t_stop]
    out: dict[int, list[torch.Tensor]] = {int(steps.t[i]): [] for i in keep}
    x0 = []
    for start in range(0, len(z), batch):
        with capture_h(unet) as store:
            x0.append(sample_ddim(unet, z[start:start + batch], steps, clip=clip, disable=True).cpu())
        for i in keep:
            out[int(steps.t[i])].append(store[i].cpu())
    return {t: torch.cat(v) for t, v in out.items()}, torch.cat(x0)


def principal_components(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` principal axes of rows x [N, D] (centred; exact SVD): axes [k, D] and
    the fraction of the variance each explains [min(N, D)] (the whole spectrum)."""
    centred = x.double() - x.double().mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    var = s.pow(2)
    return vh[:k].float(), (var / var.sum()).float()


def pca_directions(hs: dict[int, torch.Tensor], k: int) -> tuple[torch.Tensor, dict]:
    """PCA of h: pooled over the shifting interval (the global directions returned,
    [k, C, H, W]) and per timestep; the spectra as ``{"pooled": [..], "per_t": {t: [..]}}``
    (explained-variance fractions)."""
    shape = next(iter(hs.values())).shape[1:]
    pooled, spec = principal_components(torch.cat([h.flatten(1) for h in hs.values()]), k)
    per_t = {t: principal_components(h.flatten(1), k)[1] for t, h in hs.items()}
    return pooled.view(k, *shape), {"pooled": spec, "per_t": per_t}


def top_singular(jvp: Callable[[torch.Tensor], torch.Tensor], vjp: Callable[[torch.Tensor], torch.Tensor],
                 dim: int, k: int, iters: int = 20, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` right singular vectors and values of a linear map J: R^dim -> R^m known
    only through ``jvp(V [k, dim]) -> J V [k, m]`` and ``vjp(U [k, m]) -> J^T U [k, dim]``,
    by subspace iteration on J^T J (each iteration one batched jvp and one vjp). Returns
    V [k, dim] (orthonormal rows, by decreasing singular value) and sigma [k]."""
    v = torch.linalg.qr(torch.randn(dim, k, generator=generator, dtype=torch.float64))[0].T
    for _ in range(iters):
        w = vjp(jvp(v.float()).double()).double()
        v = torch.linalg.qr(w.T)[0].T
    # Rayleigh-Ritz: rotate within the subspace to the singular vectors of J restricted to it
    _, sigma, wh = torch.linalg.svd(jvp(v.float()).double().T, full_matrices=False)  # J V^T = U S W^T
    return (wh @ v).float(), sigma.float()


def jacobian_directions(unet: nn.Module, x_t: torch.Tensor, t: int, k: int, iters: int = 20,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` right singular vectors of d eps(x_t, t) / d h for one image x_t
    [1, C, H, W] (Haas et al.'s image-specific directions): [k, C_h, H_h, W_h] and their
    singular values [k]. The Jacobian is never formed: each iteration is one batched
    forward-mode and one reverse-mode product through the UNet."""
    with torch.no_grad(), capture_h(unet) as store:
        unet(x_t, torch.tensor([t], device=x_t.device))
    h_shape = store[0].shape[1:]
    x = x_t.expand(k, *x_t.shape[1:])
    tt = torch.full((k,), t, device=x_t.device)

    def eps_of(dh: torch.Tensor) -> torch.Tensor:
        with shift_h(unet, lambda h, emb: dh.view(k, *h_shape)):
            return unet(x, tt).flatten(1)

    zero = torch.zeros(k, h_shape.numel(), device=x_t.device)

    # detached: the UNet's weights require grad, so each product would otherwise carry a graph
    # back to them, and the subspace iteration would chain those graphs (scripts/bench_jacobian.py)
    def jvp(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(eps_of, (zero,), (v.to(x_t.device),))[1].detach().cpu()

    def vjp(u: torch.Tensor) -> torch.Tensor:
        return torch.func.vjp(eps_of, zero)[1](u.to(x_t.device).float())[0].detach().cpu()

    v, sigma = top_singular(jvp, vjp, h_shape.numel(), k, iters, torch.Generator().manual_seed(seed))
    return v.view(k, *h_shape), sigma


def project_out(d: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``d`` without its component along ``other`` (both [C, H, W]): the result is orthogonal
    to ``other`` (Haas et al.'s linear disentangling)."""
    o = other.flatten() / other.flatten().norm().clamp_min(1e-12)
    return (d.flatten() - (d.flatten() @ o) * o).view_as(d)


def mean_difference(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of h [N, ...] over rows where ``mask`` [N] holds minus the mean over the others."""
    return h[mask].mean(0) - h[~mask].mean(0)


def supervised_directions(h: torch.Tensor, labels: torch.Tensor, measures: dict[str, torch.Tensor],
                          classes: Sequence[str] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Directions from labelled samples: h [N, C, H, W] (pooled over the interval), class
    ``labels`` [N] (digits; shapes32's shapes) and continuous ``measures`` {name: [N]} (stroke
    measures; shapes32's factors). One direction per class present (its samples minus the
    rest), then per measure the top quartile minus the bottom quartile, with the class
    directions projected out so it moves the measure, not the class (a measure that does not
    vary, or a class that is all or none of the samples, gives none). ``classes`` names the
    classes by index (default ``digit c``). Returns directions [K, C, H, W] and their names."""
    dirs, names = [], []
    for c in sorted(set(labels.tolist())):
        mask = labels == c
        if 0 < mask.sum() < len(labels):
            dirs.append(mean_difference(h, mask))
            names.append(classes[c] if classes else f"digit {c}")
    # an orthonormal basis of the class directions' span (they are linearly dependent: each
    # is a class mean minus the others'), to project out one axis at a time
    basis = []
    if dirs:
        _, sv, vh = torch.linalg.svd(torch.stack(dirs).flatten(1).double(), full_matrices=False)
        basis = vh[sv > sv[0] * 1e-6].float()
    for name, m in measures.items():
        ok = torch.isfinite(m)
        lo, hi = m[ok].quantile(0.25), m[ok].quantile(0.75)
        sel = ok & ((m <= lo) | (m >= hi))
        upper = (m >= hi)[sel]
        if upper.all() or not upper.any():  # the measure does not vary over these samples
            continue
        d = mean_difference(h[sel], upper)
        for axis in basis:
            d = project_out(d, axis.view_as(d))
        dirs.append(d)
        names.append(f"{name}+")
    return torch.stack(dirs), names


def random_directions(k: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """``k`` Gaussian random directions [k, *shape] (the floor of the comparison)."""
    return torch.randn((k, *shape), generator=torch.Generator().manual_seed(seed))


def random_set(learned: DirectionSet, h_shape: tuple[int, ...], rel: float, seed: int = 0) -> DirectionSet:
    """``learned.K`` random directions of h [C, H, W] on ``learned``'s chain, each scaled so that
    |dh| = |s| ``rel`` rms(h): the floor of the comparison at any step size."""
    rand = random_directions(learned.K, tuple(h_shape), seed)
    return learned.with_shift(FixedDirections(rand, rel), names=tuple(f"R{k}" for k in range(learned.K)))


LEARNED = "learned (this paper)"
"""The key of the learned set in :func:`every_method`'s methods."""


def training_free(methods: dict[str, DirectionSet]) -> dict[str, DirectionSet]:
    """:func:`every_method`'s methods without the learned set."""
    return {name: other for name, other in methods.items() if name != LEARNED}


def every_method(unet: nn.Module, learned: DirectionSet, classifier: nn.Module | None, n: int, rel: float, *,
                 seed: int = 0, jacobian_iters: int = 10, device: str | torch.device = "cpu"
                 ) -> tuple[dict[str, DirectionSet], dict]:
    """Every family of directions for one DM, each a :class:`DirectionSet` on the chain of
    ``learned`` and scaled so that |dh| = |s| ``rel`` rms(h): the learned shift block (a
    copy set to that fixed size), PCA of h over ``n`` samples (pooled over the shifting
    interval), the Jacobian's top singular vectors for the first sample at the chain's first
    step, supervised directions (when a digit ``classifier`` is given: digits and stroke
    measures) and random ones.

    Returns ``{name: direction set}`` (each with its directions' names) and the diagnostics
    ``{"pca_spectra", "jacobian_sigma", "jacobian_t", "h_shape"}`` (h_shape: h's [C, H, W])."""
    steps, K = learned.steps, learned.K
    shape = (unet.in_channels, unet.image_size, unet.image_size)
    z = torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    hs, x0 = collect_h(unet, z, steps, learned.t_stop, clip=learned.clip)
    pca, spectra = pca_directions(hs, min(K, n))
    jac, sigma = jacobian_directions(unet, z[:1], int(steps.t[0]), K, iters=jacobian_iters, seed=seed)

    def fixed_set(dirs: torch.Tensor, names: list[str]) -> DirectionSet:
        return learned.with_shift(FixedDirections(dirs, rel), names=tuple(names))

    methods = {
        LEARNED: learned.at_size(rel),
        "PCA (pooled)": fixed_set(pca, [f"PC{k + 1}" for k in range(len(pca))]),
        "Jacobian (one image)": fixed_set(jac, [f"SV{k + 1}" for k in range(K)]),
    }
    if classifier is not None:
        with torch.no_grad():
            labels = classifier.cpu()(x0).argmax(1)
        m = torch.from_numpy(morphometry(x0)).float()
        sup, names = supervised_directions(torch.stack(list(hs.values())).mean(0), labels,
                                           {name: m[:, j] for j, name in enumerate(MEASURES)})
        methods["supervised"] = fixed_set(sup, names)
    h_shape = tuple(hs[int(steps.t[0])].shape[1:])
    methods["random"] = random_set(learned, h_shape, rel, seed)
    return methods, {"pca_spectra": spectra, "jacobian_sigma": sigma, "jacobian_t": int(steps.t[0]), "h_shape": h_shape}


TOLERANCE = 0.05
"""How close (relative) an image change must come to its target to count as equal change."""


@torch.no_grad()
def median_change(unet: nn.Module, dirs: DirectionSet, *, n: int = 4, seed: int = 0,
                  device: str | torch.device = "cpu") -> float:
    """How far ``dirs`` moves the image: the median over directions of the mean absolute pixel
    change at s = S/2 on ``n`` noises of ``seed`` (the interpretability evaluation's
    ``median_change_half``)."""
    shape = (unet.in_channels, unet.image_size, unet.image_size)
    z = torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    base = dirs.plain(unet, z).repeat(dirs.K, 1, 1, 1)
    k = torch.arange(dirs.K, device=device).repeat_interleave(n)
    edits = dirs.to(device).edit(unet, z.repeat(dirs.K, 1, 1, 1), k, dirs.S / 2)
    return (edits - base).abs().flatten(1).mean(1).view(dirs.K, n).mean(1).median().item()


@torch.no_grad()
def matched_size(unet: nn.Module, dirs: DirectionSet, target: float, rel: float, *, n: int = 4, seed: int = 0,
                 iters: int = 6, tol: float = TOLERANCE, device: str | torch.device = "cpu") -> tuple[float, float]:
    """The step size at which ``dirs`` (rescaled with :meth:`DirectionSet.at_size`) moves the
    image by ``target``: the median over directions of the mean absolute pixel change at
    s = S/2 on ``n`` noises, the interpretability evaluation's ``median_change_half``.
    Starts at ``rel`` and takes up to ``iters`` secant steps on log change against log size
    (an edit does not grow in proportion to dh), stopping once a change is within ``tol``
    (relative) of ``target``. Returns (size, its change), the measured point closest to
    ``target``; the caller sees from the change whether the target was reached (a set whose
    edits saturate may not reach it, and one that moves nothing, change 0, at no size:
    :func:`reached`)."""
    if not target > 0:
        raise ValueError(f"target change must be > 0, got {target}")

    def change(size: float) -> float:
        return median_change(unet, dirs.at_size(size), n=n, seed=seed, device=device)

    points = [(rel, change(rel))]
    size = rel * target / max(points[0][1], 1e-12)
    for _ in range(iters):
        if reached(points[-1][1], target, tol) or not points[-1][1] > 0:  # reached, or nothing moves at all
            break
        points.append((size, change(size)))
        (r0, c0), (r1, c1) = points[-2:]
        slope = math.log(c1 / c0) / math.log(r1 / r0) if r0 != r1 and c0 > 0 and c1 > 0 else 1.0
        size = r1 * (target / max(c1, 1e-12)) ** (1 / max(slope, 0.1))
    return min((p for p in points if math.isfinite(p[1])), key=lambda p: abs(math.log(max(p[1], 1e-12) / target)))


def reached(change: float, target: float, tol: float = TOLERANCE) -> bool:
    """Whether ``change`` is within ``tol`` (relative) of ``target``: :func:`matched_size`'s stop."""
    return abs(change - target) <= tol * target
