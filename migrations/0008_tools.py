"""Tools: agents get MCP servers and the tools that need approval; a run may wait for a person.

A run WAITING_APPROVAL keeps its session busy like a running one (the unique index now covers
both), but no process owns it: the reaper, which ends runs of dead processes, never touches it.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from models.run import RunStatus


class Migration(migrations.Migration):
    dependencies = [("models", "0007_branches")]

    operations = [
        ops.AddField(
            model_name="Agent", name="mcp_servers", field=fields.JSONField(default=list, db_default="[]")
        ),
        ops.AddField(
            model_name="Agent",
            name="approval_required",
            field=fields.JSONField(default=list, db_default="[]"),
        ),
        ops.AddField(
            model_name="Run", name="pending_approvals", field=fields.JSONField(default=list, db_default="[]")
        ),
        ops.AlterField(
            model_name="Run",
            name="status",
            field=fields.CharEnumField(
                RunStatus,
                max_length=16,
                default=RunStatus.RUNNING,
                description="RUNNING: running\nWAITING_APPROVAL: waiting_approval\nCOMPLETED: completed\n"
                "FAILED: failed\nCANCELLED: cancelled",
            ),
        ),
        ops.RunSQL(
            """DROP INDEX runs_one_running;
               CREATE UNIQUE INDEX runs_one_running ON runs (session_id)
                   WHERE status IN ('running', 'waiting_approval')""",
            reverse_sql="""DROP INDEX runs_one_running;
                           CREATE UNIQUE INDEX runs_one_running ON runs (session_id) WHERE status = 'running'""",
        ),
    ]
