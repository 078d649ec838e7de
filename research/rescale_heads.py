"""Shrink a direction model's shift heads back to the cap, edits unchanged (issue 11, probe h1).

    python research/rescale_heads.py SRC DST [target=2] [n=64] [seed=11]

With ``shift_norm="cap"`` the edits do not depend on a head's scale while its output stays
above the cap, yet Adam turns a head by about lr / |head| a step: on the committed cpu model
every head's output is 14.6-58.8 times the cap before the cap clips it, so its directions had
nearly stopped turning. This measures each head's output before the cap on the h of ``n``
noises (seed ``seed``) at every shifted step of the model's chain, scales each head so that
its smallest is ``target`` times the cap (:meth:`hdisc.discovery.ShiftBlock.rescale_heads`),
checks that 8 edits (at most ``n``) at s = 4 are unchanged, and writes DST: SRC's file with the new weights
and ``rescaled_heads`` (what was done, each head's smallest size before). DST is a
``directions.pt`` to warm-start from (``research/probe_discovery.py NAME init_from=DST``).
"""

from __future__ import annotations

import sys

import torch

from hdisc.backbone import capture_h
from hdisc.direction_set import DirectionSet
from hdisc.files import atomic_save, load_file, project_path, shown_path
from hdisc.runs import open_trained, script_settings
from hdisc.schedule import shifted_steps

EDITS_KEPT = 1e-3
"""The largest pixel difference allowed between the edits before and after (rounding)."""


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    src, dst = project_path(argv[0]), project_path(argv[1])
    given = script_settings(argv[2:], {"target": "X >= 1", "n": "N", "seed": "N"})
    opts = {key: float(given.get(key, default)) for key, default in (("target", 2), ("n", 64), ("seed", 11))}
    if dst.exists():
        raise SystemExit(f"{shown_path(dst)} exists: name a new file")
    _, unet, model, cfg, _ = open_trained("mnist32", "cpu", directions=src, settings="file")
    dirs = DirectionSet.of(model.shift, cfg, unet)
    z = torch.randn((int(opts["n"]), unet.in_channels, unet.image_size, unet.image_size),
                    generator=torch.Generator().manual_seed(int(opts["seed"])))
    m = min(8, len(z))
    k, s = torch.arange(m) * (cfg.K // m), torch.full((m,), 4.0)
    embs: list[torch.Tensor] = []
    with torch.no_grad(), capture_h(unet, embs) as hs:
        dirs.plain(unet, z)
    n_shifted = shifted_steps(dirs.steps, cfg.t_stop)
    h, emb = torch.cat(hs[:n_shifted]), torch.cat(embs[:n_shifted])
    before = dirs.edit(unet, z[:m], k, s)
    smallest = model.shift.rescale_heads(h, emb, opts["target"])
    moved = (dirs.edit(unet, z[:m], k, s) - before).abs().max().item()
    if moved > EDITS_KEPT:
        raise SystemExit(f"the edits moved by {moved:.2g} (> {EDITS_KEPT}): a head fell under the cap; "
                         "raise target")
    blob = load_file(src, "direction model", keys=("model",))
    blob["model"] = model.state_dict()
    blob["rescaled_heads"] = {"from": shown_path(src), **opts, "edits_moved": moved,
                              "smallest_before": [round(v, 2) for v in smallest.tolist()]}
    atomic_save(blob, dst)
    print(f"{shown_path(dst)}: heads were {smallest.min():.1f}-{smallest.max():.1f} times the cap, now "
          f"{opts['target']:g} at the least; edits moved {moved:.1g}")


if __name__ == "__main__":
    main(sys.argv[1:])
