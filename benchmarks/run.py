"""All benchmarks in one command: `python -m benchmarks.run [--quick]`; tables printed, JSON in benchmarks/results/."""

from __future__ import annotations

import sys

from benchmarks import ask, ingest, joint, search
from benchmarks.common import write_json


def main() -> None:
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    quick = "--quick" in sys.argv
    results = {
        "ingest": ingest.run(images=20 if quick else 60, repeats=1 if quick else 3, ray_images=40 if quick else 300),
        "search": search.run(sizes=(10_000,) if quick else (10_000, 100_000), queries=50 if quick else 200),
        "ask": ask.run(),
        "joint": joint.run(),
    }
    print(f"results: {write_json('latest', results)}")


if __name__ == "__main__":
    main()
