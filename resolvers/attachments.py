from __future__ import annotations

from starlette.datastructures import UploadFile

from resolvers import mapping
from resolvers.context import Context
from schema.attachment import Attachment
from services import attachments
from services.errors import BadInput


async def upload(ctx: Context, file: object) -> Attachment:
    """The file of a GraphQL multipart request (web/uploads.py parsed it, keeping at most one
    byte past the limit: enough to tell that a file is too large without holding it)."""
    if not isinstance(file, UploadFile):
        raise BadInput("file must be a file of a multipart request (the GraphQL multipart request spec)")
    limit = ctx.settings.max_attachment_bytes
    if file.size is not None and file.size > limit:
        raise BadInput(f"the file is larger than {limit} bytes (PARLEY_MAX_ATTACHMENT_BYTES)")
    await file.seek(0)  # one file may be mapped to several variables
    data = await file.read(limit + 1)
    row = await attachments.upload(ctx.user, file.filename, file.content_type, data, limit)
    return mapping.attachment(row)
