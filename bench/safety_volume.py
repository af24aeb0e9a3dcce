"""Figures for the safety run: how many incident histories, facts, simulated sends and
texts, and how many histories carried a fact that blocks for good.

    .venv/bin/python bench/safety_volume.py [N]      # default 100,000 histories
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.random_scripts import script_for

BASE_SEED = 20261128


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    texts: Counter[str] = Counter()
    facts = blocked = sending = 0
    began = time.perf_counter()
    for n in range(total):
        sim = script_for(BASE_SEED * 1_000_003 + n).run()  # asserts every invariant
        facts += len(sim.facts)
        blocked += sim.sticky_fact is not None
        sending += bool(sim.sent)
        texts.update(s.kind.value for s in sim.sent)
    elapsed = time.perf_counter() - began
    print(f"histories={total} facts={facts} elapsed={elapsed:.1f}s ({total / elapsed:,.0f}/s)")
    print(f"histories with a fact that blocks for good: {blocked}")
    print(f"histories that texted: {sending}; texts: {dict(texts)}")
    print("invariant violations: 0 (any would have raised)")


if __name__ == "__main__":
    main()
