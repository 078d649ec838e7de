"""How well shapes32's factor readers recover the factors drawn (issue 29).

    python research/shapes_readers.py [n=2000] [seed=7]

Loads the committed shape reader (``models/shape_net.pt``; trains and saves it first if
absent, about two minutes on one thread) and reads every factor of ``n`` held-out images
of dataset seed ``seed`` (the DM trains on seed 0; the reader on seed 1000): R^2 per
continuous factor and the shape accuracy. Writes results/shapes32-cpu/factor_readers.json.
"""

from __future__ import annotations

import sys

from hdisc.factors import load_shape_net, validate_readers
from hdisc.files import project_path, shown_path
from hdisc.runs import write_record


def main(*args: str) -> None:
    opts = dict(a.split("=", 1) for a in args)
    net_path = project_path("models/shape_net.pt")
    record = validate_readers(load_shape_net(net_path), n=int(opts.get("n", 2000)), seed=int(opts.get("seed", 7)))
    out = project_path("results/shapes32-cpu/factor_readers.json")
    write_record(out, {"dataset": "shapes32", **record}, {"shape_net": net_path})
    print(record)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
