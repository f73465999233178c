from __future__ import annotations

from django.conf import settings
from django.db import migrations


def install(apps, schema_editor):
    from audit.db import install_triggers

    apps.get_model("audit", "AuditChainHead").objects.get_or_create(singleton=1, defaults={"seq": 0, "mac": ""})
    if settings.AUDIT_TRIGGERS:
        install_triggers(schema_editor.connection)


def uninstall(apps, schema_editor):
    from audit.db import drop_triggers

    drop_triggers(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, uninstall)]
