"""The feature indexes become covering indexes (issue #7): the online feature query reads only
index pages. Built CONCURRENTLY on PostgreSQL so a live table keeps taking writes; the old index
is dropped only once the new one exists."""

from django.db import migrations, models


class ConcurrentlyOnPostgres:
    """Index operations that run CONCURRENTLY on PostgreSQL and plainly elsewhere (SQLite)."""

    atomic = False

    def _run(self, schema_editor, method, model, index):
        if schema_editor.connection.vendor == "postgresql":
            if method == "add_index":
                # A CREATE INDEX CONCURRENTLY that was interrupted leaves an INVALID index behind,
                # which would make every re-run fail with "already exists".
                name = schema_editor.quote_name(index.name)
                schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            getattr(schema_editor, method)(model, index, concurrently=True)
        else:
            getattr(schema_editor, method)(model, index)


class AddIndex(ConcurrentlyOnPostgres, migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            self._run(schema_editor, "add_index", model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            self._run(schema_editor, "remove_index", model, self.index)


class RemoveIndex(ConcurrentlyOnPostgres, migrations.RemoveIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            self._run(schema_editor, "remove_index", model, index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            self._run(schema_editor, "add_index", model, index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("fraud", "0006_card_data"),
    ]

    operations = [
        AddIndex(
            model_name="transaction",
            index=models.Index(
                fields=["owner", "customer_id", "-timestamp"],
                include=("amount", "merchant_id", "country"),
                name="tx_customer_cover",
            ),
        ),
        AddIndex(
            model_name="transaction",
            index=models.Index(
                fields=["owner", "merchant_id", "-timestamp"],
                include=("label", "label_time"),
                name="tx_merchant_cover",
            ),
        ),
        RemoveIndex(model_name="transaction", name="tx_customer_time"),
        RemoveIndex(model_name="transaction", name="tx_merchant_time"),
    ]
