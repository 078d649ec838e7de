"""How many directions of h do the cpu DMs answer, and how good are their samples? (issue 11)

    python research/h_spectrum.py [dm=PATH[,PATH...]] [n=4] [k=64] [iters=12] [n_quality=1000] [r=10]
        [learned=true|false] [device=cpu]

For each mnist32 DM file (default: the committed ``models/mnist32-cpu/dm_ema.pt``; any UNet
configuration, read from the file, so the paper preset's DM too) on the cpu preset's training
chain (M and t_stop of the discovery config): the top ``k`` singular values of
d eps / d h at every shifted node for ``n`` noises (:func:`hdisc.spectrum.h_spectrum`), how many
are at least a quarter and a tenth of the largest (:func:`hdisc.spectrum.answered`), and the
DM's DDIM samples scored as ``experiments/train_dm.py`` scores them (MnistNet confidence and
FD-MnistNet of ``n_quality`` samples of seed 0 against test digits; with the default 1,000 the
committed DM's row repeats ``train_dm.json``'s). The training step of each DM is read from the
``dm_checkpoint.pt`` beside it, else from a released model's ``train_dm.json``.

With ``learned=true`` (the default) it also asks where the committed directions
(``models/mnist32-cpu/directions.pt``, trained on the committed DM) point: on the committed DM and
the same noises, each direction's share of |dh|^2 inside the top ``r`` answered directions at each
shifted node (:func:`hdisc.spectrum.answered_share`; a random direction's is about r / dim(h)),
its mean image change at s = +-S (the directions chapter's change score), and the rank
correlation of the two over the K directions. Writes ``results/mnist32-cpu/h_spectrum.json``.
About 10 minutes a DM at one thread, and 5 more for the learned directions.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from hdisc.backbone import capture_h, load_dm
from hdisc.data import load_mnist
from hdisc.direction_set import DirectionSet
from hdisc.directions import change_scores, direction_ends
from hdisc.files import load_file, project_path, shown_path
from hdisc.metrics import digit_quality, mnist_net
from hdisc.presets import get_preset
from hdisc.runs import open_trained, resolve_device, script_settings, write_record
from hdisc.sampling import generate
from hdisc.schedule import shifted_steps
from hdisc.spectrum import answered, answered_share, h_spectrum
from hdisc.training import DM_CHECKPOINT

FRACTIONS = (0.25, 0.1)
"""The counts recorded: singular values at least a quarter, and a tenth, of the largest."""


def noises(unet: torch.nn.Module, n: int, device: torch.device) -> torch.Tensor:
    """The same ``n`` noises of seed 0 for every DM of one image shape: [n, C, H, W]."""
    shape = (n, unet.in_channels, unet.image_size, unet.image_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)


def trained_steps(path: Path) -> int | None:
    """The training step of the DM file ``path``: its checkpoint's beside it, else its released
    record's (``train_dm.json``); None when neither is there."""
    checkpoint, record = path.parent / DM_CHECKPOINT, path.parent / "train_dm.json"
    if checkpoint.is_file():
        return load_file(checkpoint, "DM checkpoint", keys=("step",))["step"]
    return json.loads(record.read_text())["steps"] if record.is_file() else None


def main(*args: str) -> None:
    given = script_settings(args, {"dm": "PATH[,PATH...]", "n": "N", "k": "N", "iters": "N", "n_quality": "N",
                                   "r": "N", "learned": "true|false", "device": "cpu|cuda"})
    n, k, iters, n_quality, r = (int(given.get(key, d)) for key, d in (("n", 4), ("k", 64), ("iters", 12),
                                                                      ("n_quality", 1000), ("r", 10)))
    if min(n, k, iters, n_quality, r) < 1:
        raise SystemExit(f"n, k, iters, n_quality and r must be >= 1, got {n}, {k}, {iters}, {n_quality}, {r}")
    if given.get("learned", "true") not in ("true", "false"):
        raise SystemExit(f"learned must be true or false, got {given['learned']!r}")
    paths = [Path(p) for p in given.get("dm", str(project_path("models/mnist32-cpu/dm_ema.pt"))).split(",")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no DM file at {', '.join(missing)}: give dm=PATH to a dm_ema.pt")
    dev = resolve_device(given.get("device", "auto"))
    preset = get_preset("mnist32", "cpu")
    cfg = preset.discovery
    net = mnist_net(project_path("models/mnist_net.pt"))
    real = load_mnist("test")[0][:2 * n_quality]
    rows = []
    for path in paths:
        start = time.perf_counter()
        unet = load_dm(path)  # its own configuration
        unet.to(dev)
        shape = (unet.in_channels, unet.image_size, unet.image_size)
        x_T = noises(unet, n, dev)
        steps = unet.steps(cfg.M)
        sigma = h_spectrum(unet, x_T, steps, cfg.t_stop, k, iters)  # [n, nodes, k]
        samples = generate(unet, n_quality, shape, unet.steps(preset.sample_steps), seed=0,
                           device=dev, disable=True)
        rows.append({
            "dm": shown_path(path),
            "trained_steps": trained_steps(path),
            "nodes_t": steps.t[:shifted_steps(steps, cfg.t_stop)].tolist(),
            "sigma_1": [round(v, 6) for v in sigma[..., 0].mean(0).tolist()],
            "sigma_ratio": [[round(v, 4) for v in node] for node in (sigma / sigma[..., :1]).mean(0).tolist()],
            **{f"answered_{f}": [round(v, 2) for v in answered(sigma, f).float().mean(0).tolist()]
               for f in FRACTIONS},
            "quality": digit_quality(net, samples, real) | {"n": n_quality, "sample_steps": preset.sample_steps},
            "wall_s": round(time.perf_counter() - start, 1),
        })
        print(f"{shown_path(path)}: answered (>= 1/4 of sigma_1) per node {rows[-1]['answered_0.25']}, "
              f"FD-MnistNet {rows[-1]['quality']['samples']['fd_mnistnet']:.2f}")
    files = {f"dm_{i}": p for i, p in enumerate(paths)}
    learned = None
    if given.get("learned", "true") == "true":
        _, unet, model, d, trained = open_trained("mnist32", "cpu", device=dev)
        dirs = DirectionSet.of(model.shift, d, unet)
        x_T = noises(unet, n, dev)
        share = answered_share(unet, dirs, x_T, r, iters)  # [K, nodes]
        x0, ends = direction_ends(unet, dirs, x_T, False)
        change = change_scores(ends - x0[None, :, None])
        with torch.no_grad(), capture_h(unet) as hs:
            unet(x_T[:1], torch.tensor([int(dirs.steps.t[0])], device=dev))
        learned = {"r": r, "random_share": round(r / hs[0][0].numel(), 6),
                   "share": [[round(v, 5) for v in row] for row in share.tolist()],
                   "change": [round(v, 5) for v in change.cpu().tolist()],
                   "spearman": [round(float(spearmanr(change.cpu(), share[:, i]).statistic), 4)
                                for i in range(share.shape[1])]}
        files |= {"learned_dm": trained["dm"], "learned_directions": trained["directions"]}
        print(f"learned directions: rank correlation of image change with share per node {learned['spearman']}")
    out = project_path("results/mnist32-cpu/h_spectrum.json")
    write_record(out, {"dataset": "mnist32", "preset": "cpu", "M": cfg.M, "t_stop": cfg.t_stop,
                       "command": "python research/h_spectrum.py " + " ".join(args), "n": n, "k": k,
                       "iters": iters, "fractions": list(FRACTIONS), "rows": rows, "learned": learned}, files)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
