"""Timestamped scripted models for the streaming benchmarks (bench/stream.py, bench/paced.py,
bench/fanout.py).

Registered in a server process started with ``PARLEY_PLUGINS=tests.plugins,bench.stream_models``
and ``PYTHONPATH=<repo root>`` (see :func:`register`); the lean peer (bench/lean_peer.py) runs the
same functions, looked up by the same names in :data:`MODELS`. Every text delta is one token
``t=<time.time()>;`` taken at the moment the model yields it, so a client can compute receipt -
emission for each delta it gets; a merged TextDelta carries several tokens (its newest and its
oldest emission).

* ``bench:ts200``: 200 deltas at once, like ``script:fast200`` (the throughput benchmark).
* ``bench:paced``: one delta every 20 ms; how many is the last word of the user message when it
  is a number (default 50, i.e. ~1 s), capped at 3,000.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from pydantic_ai.messages import ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

TOKEN = re.compile(r"t=([0-9.]+);")
PACE_S = 0.02


def stamps(text: str) -> list[float]:
    """The emission times embedded in a delta's text, oldest first."""
    return [float(x) for x in TOKEN.findall(text)]


def _last_word(messages: Any) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    words = part.content.split()
                    return words[-1] if words else ""
    return ""


async def ts200(messages: Any, info: AgentInfo) -> AsyncIterator[str]:
    for _ in range(200):
        yield f"t={time.time():.6f};"


async def paced(messages: Any, info: AgentInfo) -> AsyncIterator[str]:
    word = _last_word(messages)
    count = min(int(word), 3000) if word.isdigit() else 50
    for _ in range(count):
        yield f"t={time.time():.6f};"
        await asyncio.sleep(PACE_S)


StreamFunction = Callable[[Any, AgentInfo], AsyncIterator[str]]
MODELS: dict[str, StreamFunction] = {"bench:ts200": ts200, "bench:paced": paced}


def register_models(models: Any) -> None:
    """Parley's plugin hook (PARLEY_PLUGINS): make :data:`MODELS` agent model strings."""
    for name, fn in MODELS.items():
        models.register(name, partial(FunctionModel, stream_function=fn, model_name=name))
