"""Webhook secrets and signatures, after the Standard Webhooks specification (its own library
signs). Secrets are stored encrypted at rest: signing needs them back, so they cannot be hashed.
No Django here: receivers' examples and tests use the same functions."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Sequence
from datetime import datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret


def secret_new() -> str:
    """A fresh signing secret: 32 random bytes, base64, with the specification's prefix."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(*, signing_secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret, space-separated, so that
    during a rotation a receiver holding either the old or the new secret verifies."""
    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in signing_secrets)


def _derive(key: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=b"cipherguard", info=purpose).derive(key.encode())


def _key_id(key: str) -> str:
    return hashlib.sha256(_derive(key, b"webhook-secret-key-id")).hexdigest()[:12]


class SecretBox:
    """Seals webhook secrets with the deployment's encryption key (AES-GCM, a key derived for this
    purpose only); opens them with the current or any older key, as card numbers are."""

    def __init__(self, *, current_key: str, old_keys: Sequence[str] = ()):
        self.current_id = _key_id(current_key)
        self._keys = {_key_id(k): AESGCM(_derive(k, b"webhook-secret-v1")) for k in (current_key, *old_keys)}

    def seal(self, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.current_id].encrypt(nonce, secret.encode(), self.current_id.encode())
        return f"v1:{self.current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, token: str) -> str:
        version, kid, payload = token.split(":", 2)
        if version != "v1" or kid not in self._keys:
            raise LookupError(f"no key {kid!r} to open a webhook secret with")
        raw = base64.b64decode(payload)
        return self._keys[kid].decrypt(raw[:12], raw[12:], kid.encode()).decode()
