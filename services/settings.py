"""The one settings object. Nothing else in Parley reads ``os.environ``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_INSTRUCTIONS = (
    "You are a helpful assistant. Answer clearly and concisely, and say so when you are unsure."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Field(default=Path(".parley"), validation_alias="PARLEY_DATA_DIR")
    host: str = Field(default="127.0.0.1", validation_alias="PARLEY_HOST")
    port: int = Field(default=8000, validation_alias="PARLEY_PORT")
    workers: int = Field(default=1, ge=1, validation_alias="PARLEY_WORKERS")
    model: str = Field(default="echo", validation_alias="PARLEY_MODEL")
    instructions: str = Field(default=DEFAULT_INSTRUCTIONS, validation_alias="PARLEY_INSTRUCTIONS")
    jwt_secret: str | None = Field(default=None, validation_alias="PARLEY_JWT_SECRET")
    jwt_public_key: str | None = Field(default=None, validation_alias="PARLEY_JWT_PUBLIC_KEY")
    graphiql: bool = Field(default=True, validation_alias="PARLEY_GRAPHIQL")
    introspection: bool = Field(default=True, validation_alias="PARLEY_INTROSPECTION")
    allowed_origins: str | None = Field(default=None, validation_alias="PARLEY_ALLOWED_ORIGINS")
    max_message_chars: int = Field(default=32000, ge=1, validation_alias="PARLEY_MAX_MESSAGE_CHARS")
    max_state_bytes: int = Field(default=65536, ge=16, validation_alias="PARLEY_MAX_STATE_BYTES")
    retention_days: int | None = Field(default=None, ge=1, validation_alias="PARLEY_RETENTION_DAYS")
    retention_interval_s: float = Field(default=3600.0, gt=0, validation_alias="PARLEY_RETENTION_INTERVAL")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="PARLEY_MAX_BODY_BYTES")
    max_memory_entries: int = Field(default=200, ge=1, validation_alias="PARLEY_MAX_MEMORY_ENTRIES")
    max_memory_bytes: int = Field(default=262_144, ge=1024, validation_alias="PARLEY_MAX_MEMORY_BYTES")
    max_connections_per_user: int = Field(
        default=50, ge=1, validation_alias="PARLEY_MAX_CONNECTIONS_PER_USER"
    )
    jwt_audience: str | None = Field(default=None, validation_alias="PARLEY_JWT_AUDIENCE")
    jwt_issuer: str | None = Field(default=None, validation_alias="PARLEY_JWT_ISSUER")

    # Additions beyond the contract, with safe defaults.
    pool_size: int = Field(default=20, ge=1, validation_alias="PARLEY_DB_POOL_SIZE")
    max_query_depth: int = Field(default=10, validation_alias="PARLEY_MAX_QUERY_DEPTH")
    max_query_tokens: int = Field(default=2000, validation_alias="PARLEY_MAX_QUERY_TOKENS")
    max_aliases: int = Field(default=15, validation_alias="PARLEY_MAX_ALIASES")
    max_page_size: int = 100
    run_timeout_s: float = Field(default=300.0, gt=0, validation_alias="PARLEY_RUN_TIMEOUT")
    # One MCP tool call; past it the model gets an error result and the run goes on.
    tool_timeout_s: float = Field(default=30.0, gt=0, validation_alias="PARLEY_TOOL_TIMEOUT")
    # HTTP connections that are too slow are closed: request headers must arrive within
    # header_timeout_s, a request body within body_timeout_s; idle keep-alive connections close
    # after keepalive_timeout_s (uvicorn's own setting).
    header_timeout_s: float = Field(default=10.0, gt=0, validation_alias="PARLEY_HTTP_HEADER_TIMEOUT")
    body_timeout_s: float = Field(default=30.0, gt=0, validation_alias="PARLEY_HTTP_BODY_TIMEOUT")
    keepalive_timeout_s: int = Field(default=5, ge=1, validation_alias="PARLEY_HTTP_KEEPALIVE_TIMEOUT")
    max_subscriptions_per_connection: int = Field(
        default=20, ge=1, validation_alias="PARLEY_MAX_SUBSCRIPTIONS_PER_CONNECTION"
    )
    log_level: str = Field(default="info", validation_alias="PARLEY_LOG_LEVEL")
    # Modules imported at start that may register extra models (services.llm.register_model):
    # how tests script models inside server processes, and a hook for custom models.
    plugins: str | None = Field(default=None, validation_alias="PARLEY_PLUGINS")

    @property
    def origins(self) -> list[str]:
        if not self.allowed_origins:
            return []
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment once per process."""
    return Settings()
