"""Peak memory and time of the Jacobian directions on the committed cpu model (issue 11).

    python scripts/bench_jacobian.py

Each setting (K directions, subspace iterations) runs :func:`hdisc.baselines.jacobian_directions`
in a fresh process and reads its peak resident memory (``ru_maxrss``, which includes the
loaded model); written to ``results/mnist32-cpu/jacobian_memory.json``. Peak memory that
grows with the iterations means the products keep an autograd graph.
"""

from __future__ import annotations

import json
import subprocess
import sys

from hdisc.files import project_path, shown_path, write_json
from hdisc.runs import environment

SETTINGS = [(8, 1), (8, 4), (32, 10)]
CHILD = """
import json, resource, sys, time
import torch
from hdisc.baselines import jacobian_directions
from hdisc.direction_set import DirectionSet
from hdisc.runs import open_trained
k, iters = int(sys.argv[1]), int(sys.argv[2])
cfg, unet, model, d, files = open_trained("mnist32", "cpu")
t = int(DirectionSet.of(model.shift, d, unet).steps.t[0])
z = torch.randn((1, 1, 32, 32), generator=torch.Generator().manual_seed(0))
start = time.perf_counter()
_, sigma = jacobian_directions(unet, z, t, k, iters=iters)
print(json.dumps({"K": k, "iters": iters, "seconds": round(time.perf_counter() - start, 2),
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
                  "sigma_top3": [round(v, 6) for v in sigma[:3].tolist()]}))
"""


def main() -> None:
    rows = [json.loads(subprocess.run([sys.executable, "-c", CHILD, str(k), str(iters)], check=True,
                                      capture_output=True, text=True).stdout.splitlines()[-1])
            for k, iters in SETTINGS]
    out = project_path("results/mnist32-cpu/jacobian_memory.json")
    write_json(out, {"command": "python scripts/bench_jacobian.py", "model": "models/mnist32-cpu", "rows": rows,
                     "environment": environment()})
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main()
