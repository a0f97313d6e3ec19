"""The built-in offline ``echo`` model: streams the user's last words back, word by word."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponseStreamEvent,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage


def last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart):
                    if isinstance(part.content, str):
                        return part.content
                    return " ".join(_word(c) for c in part.content)
    return ""


def _word(item: object) -> str:
    """A prompt item as echo says it: text as it is, an attachment by its kind."""
    if isinstance(item, str):
        return item
    if isinstance(item, BinaryContent):
        return f"[{item.media_type}]"
    return "[file]"


class EchoModel(Model):
    """Answers with the user's own words; costs nothing and needs no provider."""

    @property
    def model_name(self) -> str:
        return "echo"

    @property
    def system(self) -> str:
        return "echo"

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        text = last_prompt(messages)
        words = len(text.split())
        return ModelResponse(
            parts=[TextPart(text)],
            model_name="echo",
            usage=RequestUsage(input_tokens=words, output_tokens=words),
        )

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        yield EchoStream(model_request_parameters=model_request_parameters, _text=last_prompt(messages))


@dataclass
class EchoStream(StreamedResponse):
    _text: str = ""
    _timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        words = self._text.split(" ")
        self._usage = RequestUsage(input_tokens=len(words))
        for i, word in enumerate(words):
            self._usage.output_tokens += 1
            for event in self._parts_manager.handle_text_delta(
                vendor_part_id="text", content=word if i == 0 else " " + word
            ):
                yield event
        self.finish_reason = "stop"

    @property
    def model_name(self) -> str:
        return "echo"

    @property
    def provider_name(self) -> str | None:
        return None

    @property
    def provider_url(self) -> str | None:
        return None

    @property
    def timestamp(self) -> datetime:
        return self._timestamp
