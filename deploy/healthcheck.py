"""Container health check: ``python deploy/healthcheck.py [/healthz]`` exits 0 when the local
gunicorn answers 200. Run by the Dockerfile's HEALTHCHECK and docker-compose.yml.

In production Django checks the Host header against ALLOWED_HOSTS (400 otherwise) and redirects
plain HTTP to HTTPS (301) unless X-Forwarded-Proto says https (SECURE_PROXY_SSL_HEADER). A bare
request to 127.0.0.1 fails both, so this check sends the first concrete allowed host and the header
a TLS-terminating proxy sends, and does not follow redirects. Standard library only.
"""

from __future__ import annotations

import http.client
import os
import sys


def probe_host(allowed_hosts: str) -> str:
    """The Host header to send: the first entry of ALLOWED_HOSTS Django would accept verbatim."""
    for entry in allowed_hosts.split(","):
        host = entry.strip()
        if host and host != "*":
            # ".example.com" allows example.com and its subdomains.
            return host.lstrip(".")
    return "localhost"  # ALLOWED_HOSTS unset or "*": the development defaults accept localhost


def probe_port(bind: str) -> int:
    """The port gunicorn listens on, from GUNICORN_BIND (``host:port``), as deploy/gunicorn.conf.py reads it."""
    _, _, port = bind.rpartition(":")
    return int(port) if port.isdigit() else 8000


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    port = probe_port(os.environ.get("GUNICORN_BIND", "0.0.0.0:8000"))
    headers = {"Host": probe_host(os.environ.get("ALLOWED_HOSTS", "")), "X-Forwarded-Proto": "https"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path, headers=headers)
        status = connection.getresponse().status
    except OSError as exc:
        print(f"unhealthy: {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"unhealthy: {path} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
