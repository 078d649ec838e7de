"""How well the effect penalty's one-step similarity stands in for the final edits' (issue 11).

    python research/effect_proxy.py

On the committed cpu model (``models/mnist32-cpu/``): :func:`hdisc.discovery.effect_similarity`
at each shifted node of the training chain, on 8 noises, against the similarity of the final
edits that the directions chapter recorded (``directions.json``, 16 noises at s = +-S): the
correlation of their |entries| over the K (K - 1) off-diagonal pairs, per node and for the mean
over nodes, and how many of the pairs the chapter links (|cosine| >= 0.7) each also links.
Also the seconds one penalty call takes, forward and backward, at ``div_images`` = 2 on this
machine's threads. Writes ``results/mnist32-cpu/effect_overlap.json``.
"""

from __future__ import annotations

import json
import time

import torch

from hdisc.discovery import effect_overlap, effect_similarity
from hdisc.files import project_path, shown_path
from hdisc.runs import open_trained, write_record
from hdisc.schedule import shifted_steps

THRESHOLD = 0.7  # the directions chapter's alike threshold


def main() -> None:
    cfg, unet, model, d, files = open_trained("mnist32", "cpu")
    unet.requires_grad_(False)
    steps = unet.steps(d.M)
    final = torch.tensor(json.loads(project_path("results/mnist32-cpu/directions.json").read_text())["similarity"])
    off = ~torch.eye(d.K, dtype=torch.bool)
    z = torch.randn((8, 1, 32, 32), generator=torch.Generator().manual_seed(5))

    def compare(sim: torch.Tensor) -> dict:
        a, b = sim[off].abs(), final[off].abs()
        return {"corr_abs": round(torch.corrcoef(torch.stack([a, b]))[0, 1].item(), 4),
                "pairs_linked": int((a >= THRESHOLD).sum()), "pairs_linked_in_both": int(((a >= THRESHOLD)
                                                                                          & (b >= THRESHOLD)).sum())}

    with torch.no_grad():
        sims = [effect_similarity(unet, model.shift, d, steps, z, i) for i in range(shifted_steps(steps, d.t_stop))]
    nodes = [{"node": i, "t": int(steps.t[i]), **compare(sim)} for i, sim in enumerate(sims)]
    seconds = []
    for i in range(len(sims)):
        start = time.perf_counter()
        effect_overlap(unet, model.shift, d, steps, z[:d.div_images], i).backward()
        seconds.append(time.perf_counter() - start)
    out = project_path("results/mnist32-cpu/effect_overlap.json")
    write_record(out, {"command": "python research/effect_proxy.py", "n_noises": len(z), "threshold": THRESHOLD,
                       "pairs": int(off.sum()), "pairs_linked_final": int((final[off].abs() >= THRESHOLD).sum()),
                       "nodes": nodes, "mean_over_nodes": compare(sum(sims) / len(sims)),
                       "div_images": d.div_images, "seconds_per_call": [round(s, 3) for s in seconds],
                       "median_seconds_per_call": round(sorted(seconds)[len(seconds) // 2], 3)}, files)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main()
