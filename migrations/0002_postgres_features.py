"""What Tortoise's model options cannot express: partial unique indexes and full-text search."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [
        # One RUNNING run per session, whichever process tries: the database has the last word.
        ops.RunSQL(
            "CREATE UNIQUE INDEX runs_one_running ON runs (session_id) WHERE status = 'running'",
            reverse_sql="DROP INDEX runs_one_running",
        ),
        ops.RunSQL(
            "CREATE UNIQUE INDEX memory_user_key ON memory_entries (user_id, key) WHERE scope = 'user'",
            reverse_sql="DROP INDEX memory_user_key",
        ),
        ops.RunSQL(
            "CREATE UNIQUE INDEX memory_session_key ON memory_entries (session_id, key) "
            "WHERE scope = 'session'",
            reverse_sql="DROP INDEX memory_session_key",
        ),
        ops.RunSQL(
            "ALTER TABLE messages ADD COLUMN search tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', coalesce(content, ''))) STORED",
            reverse_sql="ALTER TABLE messages DROP COLUMN search",
        ),
        ops.RunSQL(
            "CREATE INDEX messages_search ON messages USING gin (search)",
            reverse_sql="DROP INDEX messages_search",
        ),
        ops.RunSQL(
            "CREATE INDEX sessions_last_activity ON sessions (last_activity_at)",
            reverse_sql="DROP INDEX sessions_last_activity",
        ),
    ]
