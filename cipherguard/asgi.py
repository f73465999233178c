"""ASGI entry point. Production serves WSGI (gunicorn sync workers): measured faster for these
sync views (docs/performance.md). Kept for ASGI servers and for that comparison."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cipherguard.settings")

application = get_asgi_application()
