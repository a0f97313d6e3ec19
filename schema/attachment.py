from __future__ import annotations

import uuid
from datetime import datetime

import strawberry


@strawberry.type(description="An uploaded file: an image, a PDF or a text file, its uploader's only")
class Attachment:
    id: uuid.UUID
    filename: str
    media_type: str = strawberry.field(description="decided from the bytes, not from the name")
    size: int = strawberry.field(description="bytes")
    url: str = strawberry.field(description="/attachments/{id}: the bytes, for the uploader's Bearer token")
    created_at: datetime
