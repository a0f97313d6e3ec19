"""Users, API tokens and authentication.

Users made by ``parley user create`` authenticate with API tokens; users named by a JWT's
``sub`` are made on first sight in a namespace of their own (``UserKind.JWT``), so a JWT can
never act as a token user of the same name (an admin, say).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

import jwt
from jwt.types import Options
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import ApiToken, User, UserKind
from services import notices
from services.credentials import KnownTokens
from services.database import acquire
from services.errors import BadInput, Conflict, NotFound, Unauthenticated
from services.settings import Settings

TOKEN_PREFIX = "pk_"
_MAX_NAME = 200


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > _MAX_NAME or "\x00" in name:
        raise BadInput(f"a user name must have 1 to {_MAX_NAME} characters")
    return name


async def create_user(name: str, *, is_admin: bool = False) -> tuple[User, str]:
    """Create a user and its first token. The token is returned once and never stored."""
    name = _check_name(name)
    try:
        async with in_transaction():
            user = await User.create(name=name, is_admin=is_admin)
            token = await _issue(user)
    except IntegrityError as exc:
        raise Conflict(f"a user named {name!r} already exists") from exc
    return user, token


async def _token_user(name: str) -> User:
    user = await User.get_or_none(name=name, kind=UserKind.TOKEN)
    if user is None:
        raise NotFound.of("user", repr(name))
    return user


async def issue_token(name: str) -> str:
    return await _issue(await _token_user(name))


async def revoke_tokens(name: str) -> int:
    """Invalidate every token of the user; their open sockets close on every process."""
    user = await _token_user(name)
    async with acquire() as conn, conn.transaction():
        result = await conn.execute("DELETE FROM api_tokens WHERE user_id = $1", user.id)
        await notices.user_gone(conn, user.id, "the user's tokens were revoked")
    return int(result.split()[-1])


async def delete_user(name: str, kind: UserKind = UserKind.TOKEN) -> int:
    """Remove the user with all their sessions, memory and attachments; their sockets close everywhere.

    Running replies are asked to stop first; whatever they still try to write afterwards finds
    its rows gone. Returns how many sessions went with the user.
    """
    user = await User.get_or_none(name=name, kind=kind)
    if user is None:
        raise NotFound.of("user", repr(name))
    async with acquire() as conn, conn.transaction():
        session_ids: list[uuid.UUID] = [
            r["id"] for r in await conn.fetch("SELECT id FROM sessions WHERE user_id = $1", user.id)
        ]
        running = await conn.fetch(
            "SELECT id FROM runs WHERE session_id = ANY($1::uuid[]) AND status = 'running'", session_ids
        )
        for run in running:
            await notices.cancel_run(conn, run["id"])
        # Sessions first: their messages' references go before the attachments they point at.
        await conn.execute("DELETE FROM sessions WHERE user_id = $1", user.id)
        await conn.execute("DELETE FROM users WHERE id = $1", user.id)
        await notices.user_gone(conn, user.id, "the user was deleted")
        await notices.sessions_deleted(conn, session_ids)
    return len(session_ids)


async def _issue(user: User) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await ApiToken.create(user=user, token_hash=_hash(token))
    return token


async def ensure_first_admin() -> str | None:
    """On a database with no users, create ``admin`` and return its token (else None)."""
    if await User.exists():
        return None
    try:
        _, token = await create_user("admin", is_admin=True)
    except Conflict:  # another process won the race
        return None
    return token


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(
    authorization: str | None, settings: Settings, known: KnownTokens | None = None
) -> User:
    """The user behind an ``Authorization`` header value, or :class:`Unauthenticated`."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthenticated("send `Authorization: Bearer <token>`")
    if token.startswith(TOKEN_PREFIX):
        digest = _hash(token)
        if known is not None and (seen := known.get(digest)) is not None:
            return seen
        row = await ApiToken.filter(token_hash=digest).select_related("user").first()
        # The lookup is by digest; compare again in constant time so no timing tells a prefix.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise Unauthenticated("invalid token")
        if known is not None:
            known.put(digest, row.user)
        return row.user
    if settings.jwt_secret or settings.jwt_public_key:
        return await _user_from_jwt(token, settings)
    raise Unauthenticated("invalid token")


async def _user_from_jwt(token: str, settings: Settings) -> User:
    keys: list[tuple[str, list[str]]] = []
    if settings.jwt_secret:
        keys.append((settings.jwt_secret, ["HS256"]))
    if settings.jwt_public_key:
        keys.append((settings.jwt_public_key, ["RS256", "ES256"]))
    # `exp` always: a JWT that never expires is a password that cannot be changed.
    required = ["sub", "exp"]
    if settings.jwt_audience:
        required.append("aud")
    if settings.jwt_issuer:
        required.append("iss")
    options: Options = {"require": required, "verify_aud": bool(settings.jwt_audience)}
    claims = None
    for key, algorithms in keys:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                options=options,
            )
            break
        except jwt.PyJWTError:
            continue
    if claims is None or not isinstance(claims.get("sub"), str):
        raise Unauthenticated("invalid token")
    try:
        name = _check_name(claims["sub"])
    except BadInput as exc:
        raise Unauthenticated("invalid token: its subject is not a valid user name") from exc
    user = await User.get_or_none(name=name, kind=UserKind.JWT)
    if user is None:
        try:
            user = await User.create(name=name, kind=UserKind.JWT)
        except IntegrityError:  # created concurrently by another request
            user = await User.get(name=name, kind=UserKind.JWT)
    return user
