"""Tortoise models only: no behaviour lives here."""

from models.agent import Agent
from models.attachment import Attachment, AttachmentData, MessageAttachment
from models.memory import MemoryEntry, MemoryScope
from models.message import Message, Role
from models.run import Run, RunStatus
from models.session import Session
from models.user import ApiToken, User, UserKind, WsConnection

__models__ = [
    User,
    ApiToken,
    Agent,
    Session,
    Message,
    Run,
    MemoryEntry,
    WsConnection,
    Attachment,
    AttachmentData,
    MessageAttachment,
]

__all__ = [
    "Agent",
    "ApiToken",
    "Attachment",
    "AttachmentData",
    "MemoryEntry",
    "MemoryScope",
    "Message",
    "MessageAttachment",
    "Role",
    "Run",
    "RunStatus",
    "Session",
    "User",
    "UserKind",
    "WsConnection",
]
