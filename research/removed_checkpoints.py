"""What the probe checkpoints that left ``models/`` held, read from the commit that last had them.

    python research/removed_checkpoints.py [commit=ca7543e76e412efaf6f3538cbb6efba21318147c]

The tree keeps release artifacts only (issue 33): the released DM and directions and the small
classifiers. The resume checkpoints of probes, the longer-trained DM and the training
checkpoints of the released models stay in the git history. This script reads each from
``commit`` (``git show COMMIT:PATH``; a ``--depth 1`` clone lacks it) and writes
``results/mnist32-cpu/removed_checkpoints.json``: per file its size, sha256 and the command that
restores it, and per training checkpoint the facts the findings quote (configuration, step,
wall time, where it started, the first and last logged values). Needs a full clone.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys

import torch

from hdisc.files import project_path, write_json

COMMIT = "ca7543e76e412efaf6f3538cbb6efba21318147c"
"""The last commit whose tree holds every removed file."""
REMOVED = tuple(f"models/mnist32-cpu/{name}" for name in (
    "dm_checkpoint.pt", "discovery_checkpoint.pt", "recipe-q2/directions.pt", "probe-e3/directions@1000.pt",
    "probe-e3/discovery_checkpoint.pt", "continuation/discovery_checkpoint.pt", "dm-long/dm_checkpoint.pt",
    "dm-long/dm_ema.pt"))
LOGGED = ("overlap", "acc", "l_ce", "d_real", "d_fake")
"""Logged values whose first and last entries a discovery checkpoint's facts keep."""


def facts(blob: dict) -> dict:
    """The quotable facts of a training checkpoint (DM or discovery); {} for plain weights."""
    if "step" not in blob:
        return {}
    out = {"step": blob["step"], "wall_s": blob["wall_s"], "threads": blob.get("threads")}
    if "discovery_config" in blob:
        log = blob["log"]
        out.update(discovery_config=blob["discovery_config"], init_from=blob["init_from"],
                   trained_on=blob["trained_on"], seed=blob["seed"],
                   first={k: log[0][k] for k in LOGGED if k in log[0]},
                   last={k: log[-1][k] for k in LOGGED if k in log[-1]})
    else:
        out.update(dm_config=blob["config"], schedule=blob.get("schedule"), seed=blob["seed"])
    return out


def main(argv: list[str]) -> None:
    settings = dict(a.split("=", 1) for a in argv)
    if set(settings) - {"commit"}:
        raise SystemExit(f"unknown setting(s) {sorted(set(settings) - {'commit'})}: valid commit=HASH")
    commit = settings.get("commit", COMMIT)
    files = []
    for path in REMOVED:
        data = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=project_path("."), capture_output=True,
                              check=True).stdout
        blob = torch.load(io.BytesIO(data), weights_only=True)
        files.append({"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "restore": f"git show {commit[:12]}:{path} > {path}", **facts(blob)})
    record = {"commit": commit, "command": "python research/removed_checkpoints.py",
              "why": "the tree keeps release artifacts only; these stay in the history (issue 33)",
              "files": files}
    print(f"wrote {write_json(project_path('results/mnist32-cpu/removed_checkpoints.json'), record)}")


if __name__ == "__main__":
    main(sys.argv[1:])
