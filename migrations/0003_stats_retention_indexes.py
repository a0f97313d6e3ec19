"""Indexes for stats and retention."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0002_postgres_features")]

    operations = [
        # Period figures (stats(days), popularAgents) aggregate messages by session and created_at:
        # carrying the aggregated columns lets PostgreSQL answer from the index alone
        # (index-only scans), about half the time of reading the table rows.
        ops.RunSQL(
            "CREATE INDEX messages_session_created ON messages (session_id, created_at) "
            "INCLUDE (role, input_tokens, output_tokens, cost)",
            reverse_sql="DROP INDEX messages_session_created",
        ),
        # Deleting a session (retention, deleteSession) cascades to memory_entries by session_id:
        # the partial unique index (session_id, key) WHERE scope = 'session' cannot serve that.
        ops.RunSQL(
            "CREATE INDEX memory_entries_session ON memory_entries (session_id)",
            reverse_sql="DROP INDEX memory_entries_session",
        ),
    ]
