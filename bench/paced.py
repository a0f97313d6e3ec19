"""Paced streams: the delay a person watching a reply feels, Parley against the lean peer.

N live replies on one worker, each model yielding one token every 20 ms (a provider's pace),
100 tokens per reply, for N = 30, 50 and 100. Model ``bench:paced`` (bench/stream_models.py:
each token is ``t=<time.time()>;``, taken when the model yields it), reached through Parley's
``chat`` subscription and through the lean peer's WebSocket (bench/lean_peer.py, the same model
function), with the client code of bench/stream.py (``--clients`` processes). Both servers run
side by side on one database; for each N a Parley round, then a lean-peer round, each on fresh
sessions. A round's subscriptions start evenly over one 20 ms pace, as replies that began at
different moments would (not all in the same millisecond).

Delay of a delivered delta = receipt time - the emission time of its OLDEST token (a delta
that merged several tokens is as late as its first one); p50/p99 over every delta of every
stream. The model's pace (mean interval between a stream's first and last token, p99 over the
streams) shows when a busy server slowed the model itself, a lag the stamps cannot see:
pydantic-ai pulls the model's next token only once the previous event has been taken (its
event stream has no buffer), so a server that falls behind makes the model wait rather than
queue tokens as a remote provider would.

    python bench/paced.py [--quick] [--strict] [--rounds N] [--clients N]   # --quick: N = 50 only

Target: Parley at 50 streams, p99 <= 25 ms.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _harness as h
import stream
from lean_peer import LeanPeer

COUNTS = (30, 50, 100)
QUICK_COUNTS = (50,)
TOKENS = 100
MODEL = "bench:paced"
TARGET_STREAMS = 50
TARGET_P99_MS = 25.0
STREAMS = stream.Streams(content=f"go {TOKENS}", deltas=TOKENS, spread_s=0.02)
WARM = stream.Streams(content="go 10", deltas=10)


def by_size(rounds: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return [r for r in rounds if len(r["final_index"]) == n]


def delays_ms(rounds: list[dict[str, Any]]) -> tuple[float, float]:
    oldest = [x for r in rounds for x in r["oldest"]]
    return 1000 * h.percentile(oldest, 50), 1000 * h.percentile(oldest, 99)


def pace_ms(rounds: list[dict[str, Any]]) -> float:
    return 1000 * h.percentile([x for r in rounds for x in r["pace"]], 99)


def complete(rounds: list[dict[str, Any]]) -> bool:
    return all(
        not r["unfinished"] and not r["errors"] and r["final_index"] == [TOKENS] * len(r["final_index"])
        for r in rounds
    )


def report_count(report: h.Report, n: int, parley: list[dict[str, Any]], peer: list[dict[str, Any]]) -> None:
    p50, p99 = delays_ms(parley)
    ok = p99 <= TARGET_P99_MS if n == TARGET_STREAMS else None
    target = f"p99 <= {TARGET_P99_MS:g}" if n == TARGET_STREAMS else ""
    report.figure(f"{n} streams: Parley delay p50 / p99 (ms)", f"{p50:.1f} / {p99:.1f}", target, ok)
    p50, p99 = delays_ms(peer)
    report.figure(f"{n} streams: lean peer delay p50 / p99 (ms)", f"{p50:.1f} / {p99:.1f}")
    report.figure(
        f"{n} streams: model pace p99, Parley / peer (ms)", f"{pace_ms(parley):.1f} / {pace_ms(peer):.1f}"
    )
    cpu = f"{stream.cpu_per_delta(parley)} / {stream.cpu_per_delta(peer)}"
    report.figure(f"{n} streams: server CPU per token, Parley / peer (µs)", cpu)
    frames = sum(r["delta_events"] for r in parley) / max(1, len(parley) * n)
    report.figure(f"{n} streams: Parley TextDeltas per {TOKENS} tokens", f"{frames:.1f}")


def run(args: argparse.Namespace) -> h.Report:
    loop_name = h.install_uvloop()
    report = h.Report()
    counts = QUICK_COUNTS if args.quick else COUNTS
    t_start = time.monotonic()
    print(
        f"paced: {', '.join(map(str, counts))} streams x {TOKENS} tokens, one per 20 ms ({MODEL}), "
        f"1 worker each; {args.clients} client process(es) ({loop_name}); {args.rounds} round(s) per count",
        flush=True,
    )
    need = stream.WARMUP_STREAMS + sum(counts) * args.rounds
    with h.bench_database("paced") as db_url:
        admin = stream.setup_parley(db_url)
        db_name = db_url.rsplit("/", 1)[-1]
        with stream.parley_server(db_url, args) as server, LeanPeer(db_url, MODEL) as peer:
            targets = stream.parley_and_peer(server, peer, admin, db_name, need, MODEL)
            sizes = [n for _ in range(args.rounds) for n in counts]
            results = stream.side_by_side(targets, sizes, args, STREAMS, WARM)

    print()
    print(f"paced ({'quick' if args.quick else 'full'} run, {time.monotonic() - t_start:.0f}s)")
    every = [r for rounds in results.values() for r in rounds]
    ok = complete(every)
    report.figure("every stream delivered its 100 tokens", "yes" if ok else "no", "yes", ok)
    for n in counts:
        parley_n, peer_n = (by_size(results[label], n) for label in ("parley", "lean peer"))
        if parley_n and peer_n:
            report_count(report, n, parley_n, peer_n)
    return report


if __name__ == "__main__":
    parser = h.base_args(__doc__.splitlines()[0])
    stream.add_options(parser, "rounds per stream count (delays pooled)")
    h.main_wrapper(run, parser.parse_args())
