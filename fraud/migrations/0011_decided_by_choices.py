"""``decided_by`` takes one of its choices, checked by the database (issue #14).

On PostgreSQL the constraint is added NOT VALID and then validated in a second statement: adding
it holds the table's exclusive lock only for a moment, and validating scans the rows under a lock
that lets scoring keep inserting. Both outside a transaction, or the first lock would be held for
the whole scan."""

from django.db import migrations, models


class AddCheckConstraintOnline(migrations.AddConstraint):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.add_constraint(model, self.constraint)
            return
        table = schema_editor.quote_name(model._meta.db_table)
        name = schema_editor.quote_name(self.constraint.name)
        # A run interrupted between the two statements leaves an unvalidated constraint behind.
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        schema_editor.execute(f"ALTER TABLE {table} ADD {self.constraint.constraint_sql(model, schema_editor)} NOT VALID")
        schema_editor.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("fraud", "0010_backtests"),
    ]

    operations = [
        migrations.AlterField(
            model_name="transaction",
            name="decided_by",
            field=models.CharField(
                blank=True,
                choices=[("model", "Model score"), ("rule", "Rule"), ("list", "List entry")],
                default="",
                max_length=8,
            ),
        ),
        AddCheckConstraintOnline(
            model_name="transaction",
            constraint=models.CheckConstraint(
                condition=models.Q(("decided_by__in", ["", "model", "rule", "list"])),
                name="transaction_decided_by_valid",
            ),
        ),
    ]
