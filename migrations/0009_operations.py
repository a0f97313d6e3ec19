"""Operations (API.md section 10): agents' request limit, the usage ledger budgets read, rate buckets."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0008_tools")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Agent",
            name="max_requests_per_run",
            field=fields.IntField(default=20, db_default=20),  # existing agents get the default
        ),
        # What each ended run used, kept by the user (not the session): deleting a session must not
        # give its tokens back to the daily budget. Filled by PostgreSQL itself as runs end, so
        # every process and host (and every way a run ends) records it; rows older than two days
        # are swept by the runtime.
        ops.RunSQL(
            [
                """CREATE TABLE run_usage (
                       run_id uuid PRIMARY KEY,
                       user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                       finished_at timestamptz NOT NULL,
                       tokens bigint NOT NULL,
                       cost float8 NOT NULL
                   )""",
                "CREATE INDEX run_usage_user_finished ON run_usage (user_id, finished_at)",
                "CREATE INDEX run_usage_finished ON run_usage (finished_at)",  # the sweep of old rows
                """CREATE FUNCTION parley_record_run_usage() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN
                       INSERT INTO run_usage (run_id, user_id, finished_at, tokens, cost)
                       SELECT NEW.id, s.user_id, coalesce(NEW.finished_at, now()),
                              coalesce(NEW.input_tokens, 0) + coalesce(NEW.output_tokens, 0),
                              coalesce(NEW.cost, 0)
                       FROM sessions s WHERE s.id = NEW.session_id
                       ON CONFLICT (run_id) DO NOTHING;
                       RETURN NULL;
                   END $$""",
                """CREATE TRIGGER runs_record_usage AFTER UPDATE OF status ON runs
                   FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status <> 'running'
                                      AND (NEW.input_tokens IS NOT NULL OR NEW.cost IS NOT NULL))
                   EXECUTE FUNCTION parley_record_run_usage()""",
            ],
            reverse_sql=[
                "DROP TRIGGER runs_record_usage ON runs",
                "DROP FUNCTION parley_record_run_usage()",
                "DROP TABLE run_usage",
            ],
        ),
        # Token buckets of PARLEY_RATE_LIMIT, one row per user, shared by every process. Unlogged:
        # cheap to write, and after a crash the buckets simply start full.
        ops.RunSQL(
            """CREATE UNLOGGED TABLE rate_buckets (
                   user_id uuid PRIMARY KEY,
                   tokens float8 NOT NULL,
                   updated_at timestamptz NOT NULL
               )""",
            reverse_sql="DROP TABLE rate_buckets",
        ),
    ]
