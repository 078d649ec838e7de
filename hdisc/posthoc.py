"""Post-hoc RCA: how recognisable a set of directions is, judged by a fresh reconstructor.

The RCA of the paper (section 5.5) is measured with the reconstructor that trained with
the directions, so it cannot score directions found another way (PCA, Jacobian,
supervised). Here a new :class:`hdisc.discovery.Reconstructor` is trained for a fixed
budget on one method's edits and scored on held-out edits (the idea of the VP metric of
Zhu et al., ECCV 2020): the same yardstick for every method. :func:`score_at_equal_change`
puts methods on the footing of equal image change, so that a passing share does not owe to
smaller edits; random directions at that change are the floor (on the committed cpu model
they pass 97%: the pass test says an edit is safe, not that it has a name).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .baselines import matched_size, random_set, reached
from .direction_set import DirectionSet
from .directions import edit_pairs
from .discovery import Reconstructor, ShiftBlock
from .interpret import interpretability, name_floor, named_beyond, realism
from .runs import recorded


def read_pairs(net: Reconstructor, pairs: tuple[torch.Tensor, ...], batch: int = 256, bins: int = 4) -> dict:
    """How well the reconstructor ``net`` reads ``pairs`` (x0, x_shift [N, C, H, W], k [N], s [N]),
    in eval mode: ``{"rca": accuracy of its k, "mag_err": mean |s_hat - s|, "rca_by_abs_s":
    [{"abs_s": [low, high], "rca", "n"}] over ``bins`` equal ranges of |s| from its least to its
    largest}`` (small edits are the hard ones)."""
    x0, xs, k, s = pairs
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = [net(x0[i:i + batch], xs[i:i + batch]) for i in range(0, len(x0), batch)]
    net.train(was_training)
    logits, s_hat = torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])
    right, size = (logits.argmax(1) == k).float(), s.abs()
    edges = torch.linspace(size.min().item(), size.max().item(), bins + 1)
    which = torch.bucketize(size, edges[1:-1], right=True)  # bin i holds edges[i] <= |s| < edges[i + 1]
    by_size = [{"abs_s": [edges[i].item(), edges[i + 1].item()], "rca": right[which == i].mean().item(),
                "n": int((which == i).sum())} for i in range(bins) if (which == i).any()]
    return {"rca": right.mean().item(), "mag_err": (s_hat - s).abs().mean().item(), "rca_by_abs_s": by_size}


def posthoc_rca(train: tuple[torch.Tensor, ...], test: tuple[torch.Tensor, ...], K: int, *, epochs: int = 10,
                batch: int = 64, lr: float = 1e-3, seed: int = 0, net: Reconstructor | None = None) -> dict:
    """Train a reconstructor on ``train`` pairs (x0, x_shift, k, s) from :func:`hdisc.directions.edit_pairs`
    for ``epochs`` passes, then score its accuracy on ``test`` pairs (:func:`read_pairs`). The
    reconstructor is a fresh one (both images and their difference, the small CNN for 32 px and
    a ResNet otherwise), or a copy of ``net`` (e.g. the one that trained with the directions;
    ``net`` itself is left as it is). Returns :func:`read_pairs`'s ``{"rca", "mag_err",
    "rca_by_abs_s"}`` and ``{"chance", "n_train", "n_test", "epochs"}``."""
    x0, xs, k, s = train
    torch.manual_seed(seed)
    net = (Reconstructor(x0.shape[1], K, small=x0.shape[-1] <= 32, with_difference=True) if net is None
           else copy.deepcopy(net))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x0), generator=gen).split(batch):
            logits, s_hat = net(x0[idx], xs[idx])
            loss = F.cross_entropy(logits, k[idx]) + 0.1 * (s_hat - s[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {**read_pairs(net, test), "chance": 1 / K, "n_train": len(x0), "n_test": len(test[0]), "epochs": epochs}


def score_directions(unet: nn.Module, dirs: DirectionSet, classifier: nn.Module, real: torch.Tensor, *,
                     n_interp: int, n_train: int, n_test: int, epochs: int, seed: int = 0,
                     device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """One set of directions on the comparison's yardstick: the interpretability evaluation
    on ``n_interp`` noises (:func:`hdisc.interpret.interpretability`), post-hoc RCA of a
    fresh reconstructor trained on ``4 n_train`` edits and scored on ``4 n_test`` held-out
    ones, and FD-``classifier`` of the training edits against ``real`` images [N, C, H, W]
    beside that of their unedited samples. Returns the comparison row and the full
    evaluation record (without its images)."""
    ev = interpretability(unet, dirs, n_interp, classifier, seed=seed + 1, device=device)
    ev.pop("sweeps")
    train_pairs = edit_pairs(unet, dirs, n_train, 4, seed=seed + 2, device=device)
    test_pairs = edit_pairs(unet, dirs, n_test, 4, seed=seed + 3, device=device)
    vp = posthoc_rca(train_pairs, test_pairs, dirs.K, epochs=epochs, seed=seed)
    fid = realism(classifier, classifier.features, train_pairs[0][::4], train_pairs[1], real)
    s = ev["summary"]
    row = {"K": dirs.K, "interpretable_fraction": s["interpretable_fraction"],
           "interpretable_interval": s["interpretable_interval"],
           "signed_fraction": s["signed_fraction"], "smooth_fraction": s["smooth_fraction"],
           "median_keep_half": s["median_keep_half"], "median_change_half": s["median_change_half"],
           "named_fraction": s["named_fraction"],
           "disentanglement": s["disentanglement"], "posthoc_rca": vp["rca"], "posthoc_chance": vp["chance"],
           "fd_ratio": fid["fd_ratio"], "fd_edits": fid["fd_edits"], "fd_raw": fid["fd_raw"],
           "attributes": s["attributes"], "interpretable": s["interpretable"],
           "top_rho": s["top_rho"],
           "names": [dirs.label(k) for k in range(dirs.K)]}
    return row, ev


def score_at_equal_change(unet: nn.Module, learned: DirectionSet, others: dict[str, DirectionSet],
                          classifier: nn.Module, real: torch.Tensor, h_shape: tuple[int, ...], *, rel: float,
                          n_interp: int, n_train: int, n_test: int, epochs: int, seed: int = 0,
                          device: str | torch.device = "cpu", done: Sequence[dict] = (),
                          on_row: Callable[[list[dict]], None] | None = None) -> dict:
    """The learned set at its own size, beside every other method at equal image change.

    ``learned`` is scored as it trained; when its shift block bounds |dh| (norm ``cap`` or
    ``fixed``: |dh| / rms(h) at s = 1 is its ``rms``) random directions of that |dh| (h
    [C, H, W] of ``h_shape``) beside it. Each set of ``others`` (built with a ``rel``, as
    :func:`hdisc.baselines.every_method` makes them) is then rescaled with
    :func:`hdisc.baselines.matched_size`, starting from ``rel`` on the evaluation's own
    noises, until its median change at S/2 equals the learned set's, and scored again with
    :func:`score_directions`. When the learned edits change nothing there is no change to
    match and only the first rows are scored. Rows of ``done`` (a former call's, with the same
    arguments) are taken as they are instead of being scored again, matched by method and
    size; ``on_row(rows)`` is called with the rows so far after each new one, so that a long
    run can keep them and resume (to the record's rounding: the target is re-read from the
    learned row). An equal-change row also records the change
    ``matched_size`` reached and whether it is within 5% of the target (``target_reached``):
    a set whose edits saturate below it is scored at the closest size found. When ``others``
    holds ``"random"``, its equal-change row is the null of a name
    (:func:`hdisc.interpret.name_floor`) and every row gains ``named_beyond_random``: the
    fraction of its directions that pass and are named beyond that floor
    (:func:`hdisc.interpret.named_beyond`). Returns the record ``{"rel": that bound or None,
    "target_change", ["name_floor",] "rows": [{"method", "size", "rel", **score row}]}``."""
    shift = learned.shift
    cap = shift.rms if isinstance(shift, ShiftBlock) and shift.norm != "free" else None
    previous = {(r["method"], r["size"]): r for r in done}
    rows: list[dict] = []

    def row(method: str, size: str, make: Callable[[], dict]) -> None:
        rows.append(previous.get((method, size)) or {"method": method, "size": size, **make()})
        if on_row is not None and (method, size) not in previous:
            on_row(rows)

    def score(dirs: DirectionSet) -> dict:
        return score_directions(unet, dirs.to(device), classifier, real, n_interp=n_interp, n_train=n_train,
                                n_test=n_test, epochs=epochs, seed=seed, device=device)[0]

    def at_equal_change(other: DirectionSet) -> dict:
        size, change = matched_size(unet, other, target, rel, n=n_interp, seed=seed + 1, device=device)
        return {"rel": size, "matched_change": change, "target_reached": reached(change, target),
                **score(other.at_size(size))}

    row("learned, as trained", "as trained" + (" (cap)" if cap is not None else ""),
        lambda: {"rel": cap, **score(learned)})
    target = rows[0]["median_change_half"]
    if cap is not None:
        row("random", "equal |dh|", lambda: {"rel": cap, **score(random_set(learned, h_shape, cap, seed))})
    if target > 0:
        for name, other in others.items():
            row(name, "equal change", lambda other=other: at_equal_change(other))
    null = next((r for r in rows if (r["method"], r["size"]) == ("random", "equal change")), None)
    if null is None:
        return {"rel": cap, "target_change": target, "rows": rows}
    floor = name_floor(null["top_rho"])
    return {"rel": cap, "target_change": target, "name_floor": floor,
            "rows": [r | {"named_beyond_random": len(named_beyond(r, floor)) / r["K"]} for r in rows]}


def recorded_name_floor(record: str | os.PathLike, files: dict[str, str | os.PathLike | None], n_interp: int,
                        seed: int) -> float | None:
    """The ``name_floor`` of an equal-change record (``research/equal_change.py``'s, written by
    :func:`score_at_equal_change`) when it holds for an evaluation of the same directions: the
    record's model files have the sha256 of ``files`` ({role: path or None}, as chapters
    record them) and it was scored on ``n_interp`` noises of the same ``seed``. Else None: a
    floor belongs to its DM, the learned set's change and its noise count (a Spearman rho
    over fewer noises strays further from 0 by chance)."""
    return recorded(record, files, "name_floor", n_interp=n_interp, seed=seed)
