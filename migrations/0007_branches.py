"""Branches: every message has a parent, every session a head; existing sessions become one branch.

``active`` marks the messages of the active branch (the path from the first message to the
head), so the active branch is read with one index range, like the whole session before: no
walk of the tree at read time. Sequences grow along every path, so the messages after a point
of the active branch are exactly its active messages of higher sequence.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0006_kept_run_text")]

    operations = [
        ops.AddField(model_name="Message", name="parent_id", field=fields.UUIDField(null=True)),
        ops.AddField(
            model_name="Message", name="active", field=fields.BooleanField(default=True, db_default=True)
        ),
        ops.AddField(model_name="Session", name="head_id", field=fields.UUIDField(null=True)),
        ops.AddField(model_name="Session", name="forked_from_id", field=fields.UUIDField(null=True)),
        ops.RunSQL(
            """UPDATE messages m SET parent_id = p.prev
               FROM (SELECT id, lag(id) OVER (PARTITION BY session_id ORDER BY sequence) AS prev
                     FROM messages) p
               WHERE m.id = p.id AND p.prev IS NOT NULL""",
            reverse_sql="SELECT 1",
        ),
        ops.RunSQL(
            """UPDATE sessions s SET head_id = (SELECT id FROM messages WHERE session_id = s.id
                                                ORDER BY sequence DESC LIMIT 1)""",
            reverse_sql="SELECT 1",
        ),
        # A fork outlives its source: the link is cleared when the source message goes.
        ops.RunSQL(
            """ALTER TABLE sessions ADD CONSTRAINT sessions_forked_from_fk FOREIGN KEY (forked_from_id)
               REFERENCES messages (id) ON DELETE SET NULL""",
            reverse_sql="ALTER TABLE sessions DROP CONSTRAINT sessions_forked_from_fk",
        ),
        # Deleting messages checks the fork link: without this index, a scan of sessions per row.
        ops.RunSQL(
            "CREATE INDEX sessions_forked_from ON sessions (forked_from_id) WHERE forked_from_id IS NOT NULL",
            reverse_sql="DROP INDEX sessions_forked_from",
        ),
        # The active branch, newest first or oldest first, whatever the other branches hold.
        ops.RunSQL(
            "CREATE INDEX messages_branch ON messages (session_id, sequence) WHERE active",
            reverse_sql="DROP INDEX messages_branch",
        ),
        # Siblings (children of one parent) and the walk down a branch.
        ops.RunSQL(
            "CREATE INDEX messages_children ON messages (session_id, parent_id, sequence)",
            reverse_sql="DROP INDEX messages_children",
        ),
    ]
