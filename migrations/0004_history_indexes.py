"""Indexes the history window needs."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0003_stats_retention_indexes")]

    operations = [
        # A run's history keeps SYSTEM rows older than its window: find them without reading
        # the session's other rows.
        ops.RunSQL(
            "CREATE INDEX messages_session_system ON messages (session_id, sequence) WHERE role = 'system'",
            reverse_sql="DROP INDEX messages_session_system",
        ),
    ]
