"""Attachments (API.md section 8): uploads by the GraphQL multipart spec, types, limits, downloads."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.datastructures import Headers, UploadFile

from tests import sample_images
from tests.conftest import Api
from tests.servers import Server, parley_server
from tests.uploads import ELF, PREFLIGHT, UPLOAD, operations, pdf, png, post_upload, upload, upload_error
from web.uploads import UploadRequestAdapter, adapter_class

ACCEPTED = [
    ("pixel.png", png(), "image/png"),
    ("photo.jpg", sample_images.JPG, "image/jpeg"),
    ("anim.gif", sample_images.GIF, "image/gif"),
    ("sticker.webp", sample_images.WEBP, "image/webp"),
    ("paper.pdf", pdf(), "application/pdf"),
    ("notes.txt", "Grüße, café ☕\n".encode(), "text/plain"),
    ("README", b"no extension at all\n", "text/plain"),
    ("plan.md", b"# Plan\n\n- one\n- two\n", "text/markdown"),
    ("table.csv", b"a,b\n1,2\n", "text/csv"),
    ("data.json", b'{"k": [1, 2, 3]}', "application/json"),
]


@pytest.mark.parametrize(("name", "data", "media_type"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
async def test_an_accepted_file_is_stored_with_the_type_of_its_bytes(
    api: Api, name: str, data: bytes, media_type: str
) -> None:
    # The client's declared type is a claim only: every file is sent as octet-stream here.
    got = await upload(api, name, data)
    assert got["filename"] == name
    assert got["mediaType"] == media_type
    assert got["size"] == len(data)
    assert got["url"] == f"/attachments/{got['id']}"
    resp = await api.client.get(got["url"], headers={"Authorization": f"Bearer {api.token}"})
    assert resp.status_code == 200
    assert resp.content == data
    assert resp.headers["content-type"].split(";")[0] == media_type
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["content-length"] == str(len(data))
    assert resp.headers["content-disposition"].startswith("attachment;")


REFUSED = [
    ("an executable renamed .png", "setup.png", ELF, "image/png"),
    ("an executable", "tool.exe", ELF, "application/octet-stream"),
    ("Latin-1 text", "latin1.txt", "café crème".encode("latin-1"), "text/plain"),
    ("text claiming to be a PDF", "report.pdf", b"just words", "application/pdf"),
    ("text declared as an image", "notes.txt", b"just words", "image/png"),
    ("a BMP image", "python.bmp", sample_images.BMP, "image/bmp"),
    ("JSON that does not parse", "data.json", b'{"k": ', "application/json"),
    ("text with NUL characters", "nul.txt", b"a\x00b", "text/plain"),
    ("an empty file", "empty.txt", b"", "text/plain"),
]


@pytest.mark.parametrize(("why", "name", "data", "declared"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_a_missing_or_spoofed_type_is_bad_user_input(
    api: Api, sql: Any, why: str, name: str, data: bytes, declared: str
) -> None:
    before = await sql.fetchval("SELECT count(*) FROM attachments")
    error = await upload_error(api, name, data, declared)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert await sql.fetchval("SELECT count(*) FROM attachments") == before


def test_filenames_are_made_safe() -> None:
    from services.file_types import detect, safe_filename

    assert safe_filename("../../etc/pass\x07wd.txt") == "passwd.txt"
    assert safe_filename("C:\\Users\\me\\Desktop\\shot.png") == "shot.png"
    assert safe_filename('résumé "final";\r\nX-Injected: 1.md') == 'résumé "final";X-Injected: 1.md'
    assert safe_filename("..") == "" and safe_filename(None) == ""  # then named by its type:
    assert detect(png(), "..", None).filename == "attachment.png"
    long = safe_filename("a" * 300 + ".markdown")
    assert len(long) == 255 and long.endswith(".markdown")


async def test_a_download_names_the_file_safely(api: Api) -> None:
    got = await upload(api, "../../uploads/résumé final; v2.md", b"# CV")
    assert got["filename"] == "résumé final; v2.md"
    resp = await api.client.get(got["url"], headers={"Authorization": f"Bearer {api.token}"})
    assert resp.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_ final_ v2.md\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20final%3B%20v2.md"
    )
    assert resp.headers["content-security-policy"] == "default-src 'none'; sandbox"


async def test_only_the_owner_downloads_it(api: Api, other: Api, client: httpx.AsyncClient) -> None:
    got = await upload(api, "secret.txt", b"for my eyes only")
    url = got["url"]
    theirs = await client.get(url, headers={"Authorization": f"Bearer {other.token}"})
    missing = await client.get(
        f"/attachments/{uuid.uuid4()}", headers={"Authorization": f"Bearer {api.token}"}
    )
    malformed = await client.get("/attachments/not-a-uuid", headers={"Authorization": f"Bearer {api.token}"})
    for resp in (theirs, missing, malformed):
        assert resp.status_code == 404
        assert resp.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert b"for my eyes only" not in resp.content
    anonymous = await client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = await client.get(url, headers={"Authorization": "Bearer pk_forged"})
    assert forged.status_code == 401
    mine = await client.get(url, headers={"Authorization": f"Bearer {api.token}"})
    assert mine.status_code == 200 and mine.content == b"for my eyes only"
    assert mine.headers["content-type"] == "text/plain; charset=utf-8"


async def test_a_download_streams_in_pieces(api: Api) -> None:
    from services.attachments import CHUNK_BYTES

    data = png(600, 400, noise=True)  # several pieces of CHUNK_BYTES
    assert len(data) > 2 * CHUNK_BYTES
    got = await upload(api, "noise.png", data)
    pieces = []
    async with api.client.stream("GET", got["url"], headers={"Authorization": f"Bearer {api.token}"}) as resp:
        assert resp.status_code == 200
        async for piece in resp.aiter_raw():
            pieces.append(piece)
    assert b"".join(pieces) == data
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_uploading_needs_a_token(client: httpx.AsyncClient) -> None:
    resp = await post_upload(client, None, "a.png", png())
    assert resp.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_multipart_request_without_a_preflight_header_is_refused(api: Api, sql: Any) -> None:
    before = await sql.fetchval("SELECT count(*) FROM attachments")
    resp = await post_upload(api.client, api.token, "a.png", png(), headers={})
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Apollo-Require-Preflight" in resp.json()["errors"][0]["message"]
    for header in ("Apollo-Require-Preflight", "X-Apollo-Operation-Name", "GraphQL-Preflight"):
        ok = await post_upload(api.client, api.token, "a.png", png(), headers={header: "1"})
        assert ok.status_code == 200 and "errors" not in ok.json(), ok.text
    assert await sql.fetchval("SELECT count(*) FROM attachments") == before + 3


async def test_an_upload_must_be_a_file(api: Api) -> None:
    # A JSON request cannot smuggle a string in as the file.
    error = await api.error(UPLOAD, {"file": "not a file"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_several_files_in_one_request(api: Api) -> None:
    query = """mutation($a: Upload!, $b: Upload!) {
      a: uploadAttachment(file: $a) { filename mediaType } b: uploadAttachment(file: $b) { filename mediaType } }"""
    resp = await api.client.post(
        "/graphql",
        data=operations(query, {"a": None, "b": None}, ["variables.a", "variables.b"]),
        files={"0": ("one.png", png(), "image/png"), "1": ("two.md", b"# two", "text/markdown")},
        headers={"Authorization": f"Bearer {api.token}", **PREFLIGHT},
    )
    assert resp.json()["data"] == {
        "a": {"filename": "one.png", "mediaType": "image/png"},
        "b": {"filename": "two.md", "mediaType": "text/markdown"},
    }


async def test_the_limit_is_exact(variant: Any, api: Api) -> None:
    limit = 4096
    client = await variant(max_attachment_bytes=limit)
    at_limit = b"a" * limit
    ok = await post_upload(client, api.token, "exact.txt", at_limit)
    assert ok.json()["data"]["uploadAttachment"]["size"] == limit, ok.text
    over = await post_upload(client, api.token, "over.txt", at_limit + b"a")
    body = over.json()
    assert over.status_code == 200
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "larger than 4096 bytes" in body["errors"][0]["message"]


async def test_a_body_far_over_the_limit_is_cut_off_while_it_streams(variant: Any, api: Api) -> None:
    limit = 64 * 1024
    max_body = 1_048_576  # PARLEY_MAX_BODY_BYTES: room for the operations and the map
    client = await variant(max_attachment_bytes=limit)
    boundary = "parley-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
        + json.dumps({"query": UPLOAD, "variables": {"file": None}})
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{{"0": ["variables.file"]}}'
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="huge.txt"\r\n'
        + "Content-Type: text/plain\r\n\r\n"
    ).encode()
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head
        for _ in range(1024):  # 64 MiB offered, without a Content-Length
            sent += 65536
            yield b"a" * 65536

    resp = await client.post(
        "/graphql",
        content=body(),
        headers={
            "Authorization": f"Bearer {api.token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            **PREFLIGHT,
        },
    )
    assert resp.status_code == 413
    assert resp.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert sent <= limit + max_body + 2 * 65536  # reading stopped at the first chunk past the bound
    # A Content-Length over the bound is refused before anything is read.
    announced = await client.post(
        "/graphql",
        content=b"x",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(limit + max_body + 1),
            **PREFLIGHT,
        },
    )
    assert announced.status_code == 413


async def _parse(body: bytes, boundary: str, max_file_bytes: int) -> Any:
    """The capped parser, fed in 1000-byte pieces as a slow client would send them."""
    from starlette.requests import Request

    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]

    async def receive() -> dict[str, Any]:
        piece = pieces.pop(0) if pieces else b""
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    headers = Headers({"content-type": f"multipart/form-data; boundary={boundary}"})
    scope = {
        "type": "http",
        "method": "POST",
        "headers": headers.raw,
        "path": "/graphql",
        "query_string": b"",
    }
    cls: type[UploadRequestAdapter] = adapter_class(max_file_bytes=max_file_bytes, max_field_bytes=10_000)
    return (await cls(Request(scope, receive)).get_form_data()).files


async def test_the_parser_never_keeps_more_than_a_byte_past_the_limit() -> None:
    boundary = "b0undary"
    content = b"z" * 50_000
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="big.txt"\r\n\r\n'.encode()
        + content
        + f"\r\n--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="1"; filename="small.txt"\r\n\r\nsmall'
        + f"\r\n--{boundary}--\r\n".encode()
    )
    files = await _parse(body, boundary, max_file_bytes=10_000)
    try:
        big, small = files["0"], files["1"]
        assert isinstance(big, UploadFile) and isinstance(small, UploadFile)
        assert big.size == 10_001  # one byte past the limit says "too large"; the rest was dropped
        assert await big.read() == b"z" * 10_001
        assert await small.read() == b"small"
    finally:
        await files.close()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with parley_server(
        database_url, tmp_path_factory.mktemp("uploads"), "uploads", PARLEY_MAX_ATTACHMENT_BYTES="200000"
    ) as srv:
        yield srv


async def test_uploads_and_downloads_through_a_real_server(server: Server, api: Api) -> None:
    """Over TCP through uvicorn: a streamed upload, the download, and a file over the limit."""
    data = png(200, 100, noise=True)  # about 60 KB, sent in pieces
    assert len(data) < 200_000
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        resp = await post_upload(client, api.token, "noise.png", data)
        got = resp.json()["data"]["uploadAttachment"]
        assert got["mediaType"] == "image/png" and got["size"] == len(data)
        back = await client.get(got["url"], headers={"Authorization": f"Bearer {api.token}"})
        assert back.content == data and back.headers["x-content-type-options"] == "nosniff"
        over = await post_upload(client, api.token, "big.txt", b"b" * 200_001)
        assert over.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert over.json()["errors"][0]["message"].startswith("the file is larger than 200000 bytes")
    assert "Traceback" not in server.output()
