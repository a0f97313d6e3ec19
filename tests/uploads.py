"""Real files for attachment tests, and uploads by the GraphQL multipart request spec over httpx."""

from __future__ import annotations

import json
import random
import struct
import zlib
from typing import Any

import httpx

UPLOAD = """mutation($file: Upload!) {
  uploadAttachment(file: $file) { id filename mediaType size url createdAt } }"""
PREFLIGHT = {"Apollo-Require-Preflight": "true"}


def png(width: int = 8, height: int = 8, *, noise: bool = False, seed: int = 1) -> bytes:
    """A valid RGB PNG; with ``noise`` its pixels are random (incompressible, so about 3 bytes a pixel)."""
    rng = random.Random(seed)

    def row(y: int) -> bytes:
        if noise:
            return b"\x00" + rng.randbytes(width * 3)
        return b"\x00" + b"".join(bytes([x * 30 % 256, y * 30 % 256, 128]) for x in range(width))

    rows = b"".join(row(y) for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    level = 0 if noise else 9  # random bytes do not compress: spare the CPU
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, level))
        + chunk(b"IEND", b"")
    )


def png_of_size(size: int, seed: int = 7) -> bytes:
    """A valid noise PNG of about ``size`` bytes (a little more)."""
    side = int((size / 3) ** 0.5) + 1
    return png(side, side, noise=True, seed=seed)


def pdf(text: str = "Hello from a PDF") -> bytes:
    """A minimal valid one-page PDF with a cross-reference table."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + bytes(range(256)) * 4


def operations(query: str, variables: dict[str, Any], paths: list[str]) -> dict[str, str]:
    return {
        "operations": json.dumps({"query": query, "variables": variables}),
        "map": json.dumps({str(i): [path] for i, path in enumerate(paths)}),
    }


async def post_upload(
    client: httpx.AsyncClient,
    token: str | None,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``uploadAttachment`` as apollo-upload-client sends it: operations, map, then the file."""
    hdrs = dict(PREFLIGHT if headers is None else headers)
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    return await client.post(
        "/graphql",
        data=operations(UPLOAD, {"file": None}, ["variables.file"]),
        files={"0": (name, data, content_type)},
        headers=hdrs,
    )


async def upload(
    api: Any, name: str, data: bytes, content_type: str = "application/octet-stream"
) -> dict[str, Any]:
    """The Attachment of a successful upload (fails the test otherwise)."""
    resp = await post_upload(api.client, api.token, name, data, content_type)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "errors" not in body, body["errors"]
    attachment: dict[str, Any] = body["data"]["uploadAttachment"]
    return attachment


async def upload_error(
    api: Any, name: str, data: bytes, content_type: str = "application/octet-stream"
) -> dict[str, Any]:
    resp = await post_upload(api.client, api.token, name, data, content_type)
    assert resp.status_code < 500, resp.text
    body = resp.json()
    assert body.get("errors"), body
    assert not (body.get("data") or {}).get("uploadAttachment")
    error: dict[str, Any] = body["errors"][0]
    return error
