"""A toy inference engine step loop, instrumented with liteprof.

Run it with recording on and read the report::

    liteprof run -- python examples/engine.py
    # or: LITEPROF_LOG=prof python examples/engine.py && liteprof report prof

Several ranks, one of them a straggler (its attention takes twice as long), as the HTML
page of the README shows them::

    for r in 0 1 2 3; do RANK=$r LITEPROF_LOG=prof python examples/engine.py --slow-rank 2 & done
    wait; liteprof report prof --format html -o report.html

Without LITEPROF_LOG the scopes cost next to nothing and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import liteprof

# Predeclared scopes: made once, entered every step (the cheapest form).
SCHEDULE = liteprof.Scope("Step:Schedule")
MODEL = liteprof.Scope("Step:Model")


def busy(seconds: float) -> None:
    """Spin (rather than sleep) so the time is really spent on the CPU."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


SLOW = 1.0  # 2.0 on the --slow-rank


@liteprof.timed("Model:Forward")
def forward(batch: int) -> None:
    with liteprof.scope("Model:Attention"):
        busy(0.00004 * batch * SLOW)
    with liteprof.scope("Model:MLP"):
        busy(0.00003 * batch)


@liteprof.timed
def sample(batch: int) -> list[int]:
    busy(0.00001 * batch)
    return [random.randrange(32000) for _ in range(batch)]


def step(rng: random.Random) -> None:
    with SCHEDULE:
        batch = rng.randint(1, 16)
        busy(0.00002)
    with MODEL:
        forward(batch)
    with liteprof.scope("Step:Sample"):
        sample(batch)
    with liteprof.scope("Step:Output"):
        busy(0.00001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--slow-rank", type=int, default=None, help="the RANK whose attention is twice as slow"
    )
    args = parser.parse_args()
    global SLOW
    if args.slow_rank is not None and os.environ.get("RANK") == str(args.slow_rank):
        SLOW = 2.0
    rng = random.Random(0)
    for _ in range(args.steps):
        step(rng)
    print(f"engine: ran {args.steps} steps (recording: {liteprof.enabled()})")


if __name__ == "__main__":
    main()
