"""Does a turn get slower as a session's history grows? sendMessage (echo model, 1 worker).

Sessions, all of the default agent (historyLimit 100):
* empty: a brand-new session for every measured turn (no prior message at all);
* 5,000 prior messages (seeded through addMessages, 100 per call), turns appended to it;
* 100 prior messages (= historyLimit), for information: the model gets a full history
  window there too, so big ÷ window isolates what grows with the session's total size and
  window ÷ empty what the history window itself costs;
* 5,000 prior messages over 5 branches (each an edit of the session's second user message
  followed by ~1,000 messages), the first branch active again: the window must read neither
  the other branches nor the tree.

Turns are sequential (one at a time) and interleaved across the series so drifts hit all alike.

    python bench/history_scaling.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import _harness as h

PRIOR = 5_000
WINDOW = 100
TARGET_RATIO = 1.2
BRANCHES = 5

FIRST_MESSAGES = (
    """query($s: UUID!) { session(id: $s) { messages(first: 3) { edges { node { id role } } } } }"""
)
EDIT = """mutation($m: UUID!, $c: String!) { editMessage(messageId: $m, content: $c) { run { status } } }"""
SWITCH = """mutation($m: UUID!) { switchBranch(messageId: $m) { messageCount } }"""


async def seed_branches(client: h.Client, session_id: str) -> None:
    """PRIOR messages over BRANCHES branches, all forking at the second user message."""
    per = PRIOR // BRANCHES
    await h.seed_messages(client, session_id, per)
    edges = (await client.gql(FIRST_MESSAGES, s=session_id))["session"]["messages"]["edges"]
    fork_at = edges[2]["node"]
    assert fork_at["role"] == "USER"
    for b in range(1, BRANCHES):
        await client.gql(EDIT, m=fork_at["id"], c=f"branch {b}")  # + its reply: 2 messages
        await h.seed_messages(client, session_id, per - 4)
    await client.gql(SWITCH, m=fork_at["id"])  # the first branch again, oldest sequences


async def measure(
    url: str, token: str, turns: int, warmup: int, meter: h.CpuMeter
) -> tuple[dict[str, list[float]], str]:
    async with h.Client(url, token) as client:
        t0 = time.monotonic()
        big = await h.create_session(client, "5000 prior")
        await h.seed_messages(client, big, PRIOR)
        window = await h.create_session(client, "100 prior")
        await h.seed_messages(client, window, WINDOW)
        branched = await h.create_session(client, "5000 prior over branches")
        await seed_branches(client, branched)
        print(f"seeded {PRIOR} + {WINDOW} messages in {time.monotonic() - t0:.1f}s")
        empties = [await h.create_session(client, None) for _ in range(turns + warmup)]
        series: dict[str, list[float]] = {"empty": [], "big": [], "window": [], "branched": []}
        for i in range(warmup + turns):
            if i == warmup:
                meter.start()
            text = f"turn {i}: what did we talk about before?"
            timed = {
                "empty": await h.send_turn(client, empties[i], text),
                "big": await h.send_turn(client, big, text),
                "window": await h.send_turn(client, window, text),
                "branched": await h.send_turn(client, branched, text),
            }
            if i >= warmup:
                for key, value in timed.items():
                    series[key].append(value * 1000)
        return series, meter.stop()


def run(args) -> h.Report:
    loop_name = h.install_uvloop()
    turns = 100 if args.quick else 200
    warmup = 10 if args.quick else 20
    report = h.Report()
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp, h.bench_database("history") as db_url:
        token = h.setup_database(db_url)
        with h.Server(db_url, log_dir=Path(tmp), PARLEY_MODEL="echo") as server:
            print(
                f"server pid {server.pid} on {server.url}, client {loop_name}; {warmup} warm-up + {turns} turns per series"
            )
            db_name = db_url.rsplit("/", 1)[-1]
            try:
                series, cpu = asyncio.run(
                    measure(server.url, token, turns, warmup, h.CpuMeter(db_name, server.pid))
                )
            except h.Stuck as exc:
                h.fail_stuck(report, exc, db_url)

    p50 = {k: h.percentile(v, 50) for k, v in series.items()}
    p99 = {k: h.percentile(v, 99) for k, v in series.items()}
    ratio = p50["big"] / p50["empty"]
    print()
    print(f"history_scaling ({'quick' if args.quick else 'full'} run, {time.monotonic() - t_start:.0f}s)")
    report.figure("turn p50, empty session", f"{p50['empty']:.1f} ms")
    report.figure(f"turn p50, session with {PRIOR:,} prior messages", f"{p50['big']:.1f} ms")
    report.figure(
        f"ratio {PRIOR:,} prior ÷ empty (p50)", f"{ratio:.3f}", f"≤ {TARGET_RATIO}", ratio <= TARGET_RATIO
    )
    branched = p50["branched"] / p50["empty"]
    report.figure(f"turn p50, {PRIOR:,} prior over {BRANCHES} branches", f"{p50['branched']:.1f} ms")
    report.figure(
        f"ratio {PRIOR:,} over {BRANCHES} branches ÷ empty (p50)",
        f"{branched:.3f}",
        f"≤ {TARGET_RATIO}",
        branched <= TARGET_RATIO,
    )
    report.figure("turns per series", f"{len(series['big'])}")
    report.figure("turn p99, empty / 5,000 prior", f"{p99['empty']:.1f} / {p99['big']:.1f} ms")
    report.figure(f"turn p50, session with {WINDOW} prior (= historyLimit)", f"{p50['window']:.1f} ms")
    report.figure(f"ratio {PRIOR:,} prior ÷ {WINDOW} prior (p50)", f"{p50['big'] / p50['window']:.2f}")
    report.figure(f"ratio {WINDOW} prior ÷ empty (p50)", f"{p50['window'] / p50['empty']:.2f}")
    print(f"  during the measured turns: {cpu}")
    return report


if __name__ == "__main__":
    parser = h.base_args(__doc__.splitlines()[0])
    h.main_wrapper(run, parser.parse_args())
    sys.exit(0)
