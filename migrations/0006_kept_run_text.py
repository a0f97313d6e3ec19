"""Runs whose streamed text is kept after they end (notifications pointed into it): found quickly."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0005_users_kind_connections")]

    operations = [
        ops.RunSQL(
            "CREATE INDEX runs_kept_text ON runs (finished_at) WHERE partial_text <> ''",
            reverse_sql="DROP INDEX runs_kept_text",
        ),
    ]
