"""GraphQL multipart requests (file uploads), parsed as they stream in, within the attachment limit.

Starlette's parser (python-multipart) reads the body as it arrives and spools each file to a
temporary file (in memory up to 1 MiB, then on disk). Of a file, at most one byte more than
``PARLEY_MAX_ATTACHMENT_BYTES`` is ever kept; the rest is read and dropped, so ``uploadAttachment``
can answer BAD_USER_INPUT in GraphQL's words while nothing larger than the limit is held. The
body as a whole is bounded as well (web/request_limits.py: the attachment limit plus
``PARLEY_MAX_BODY_BYTES`` for the operations), so a dropped tail cannot go on for ever.

CSRF: ``multipart/form-data`` is a content type a browser may POST from any page without a
CORS preflight. Like Apollo Server (and Strawberry's other integrations), Parley takes a
multipart request only with a header that forces a preflight: ``Apollo-Require-Preflight``,
``X-Apollo-Operation-Name`` or ``GraphQL-Preflight``. Tokens are Bearer headers only, never
cookies, so a forged request would carry no user anyway; the header makes the rule explicit.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from cross_web import FormData, StarletteRequestAdapter
from starlette.datastructures import FormData as StarletteForm
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")
MAX_FILES = 10  # per request
_FORM_STATE = "parley_form"


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def forces_preflight(request: Request) -> bool:
    return any(request.headers.get(name, "").strip() for name in PREFLIGHT_HEADERS)


class _CappedParser(MultiPartParser):
    """Keeps at most ``max_file_bytes + 1`` bytes of each file; the rest is read and dropped."""

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes],
        *,
        max_file_bytes: int,
        max_field_bytes: int,
    ) -> None:
        super().__init__(headers, stream, max_files=MAX_FILES, max_fields=16, max_part_size=max_field_bytes)
        self.max_file_bytes = max_file_bytes
        self._file_kept = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._file_kept = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is None:
            super().on_part_data(data, start, end)
            return
        room = self.max_file_bytes + 1 - self._file_kept
        if room > 0:
            piece = data[start : min(end, start + room)]
            self._file_kept += len(piece)
            super().on_part_data(piece, 0, len(piece))


class UploadRequestAdapter(StarletteRequestAdapter):
    """Strawberry's view of a Starlette request, with multipart bodies parsed by the capped parser."""

    max_file_bytes = 10 * 1024 * 1024
    max_field_bytes = 1024 * 1024

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.starlette_request = request

    async def get_form_data(self) -> FormData:
        request = self.starlette_request
        try:
            async with aclosing(request.stream()) as stream:
                parser = _CappedParser(
                    request.headers,
                    stream,
                    max_file_bytes=self.max_file_bytes,
                    max_field_bytes=self.max_field_bytes,
                )
                form = await parser.parse()
        except MultiPartException as exc:
            raise ValueError(exc.message) from exc  # Strawberry: 400, "Unable to parse the multipart body"
        setattr(request.state, _FORM_STATE, form)  # its files are closed once the response is made
        return FormData(files=form, form=form)


def adapter_class(*, max_file_bytes: int, max_field_bytes: int) -> type[UploadRequestAdapter]:
    """The adapter class with a deployment's limits (Strawberry makes one adapter per request)."""
    limits = {"max_file_bytes": max_file_bytes, "max_field_bytes": max_field_bytes}
    return type("UploadRequestAdapter", (UploadRequestAdapter,), limits)


async def close_form(request: Request) -> None:
    form: StarletteForm | None = getattr(request.state, _FORM_STATE, None)
    if form is not None:
        await form.close()
