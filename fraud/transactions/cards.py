"""Card numbers (PANs): validation, keyed fingerprints and authenticated encryption.
No Django import; keys are passed in.

Stored forms, and nothing else: ``first6``/``last4`` for display, an HMAC-SHA256 fingerprint
(keyed, so it cannot be reversed by hashing every possible PAN) for look-ups and card-level
history, and AES-256-GCM ciphertext tagged with the id of the key that made it, so keys rotate:
``v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cipherguard.luhn import luhn_valid

PAN_RE = re.compile(r"[0-9]{12,19}")  # ASCII digits only: \d would accept other scripts' digits


class InvalidCardNumberError(ValueError):
    pass


class UnknownKeyError(LookupError):
    pass


def validate_pan(value: str) -> str:
    if not isinstance(value, str) or not PAN_RE.fullmatch(value):
        raise InvalidCardNumberError("Must be 12 to 19 ASCII digits, without spaces.")
    if not luhn_valid(value):
        raise InvalidCardNumberError("Is not a valid card number (Luhn check failed).")
    return value


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=b"cipherguard", info=purpose).derive(secret.encode())


def key_id(secret: str) -> str:
    """A short public name for a key (not the key): lets ciphertexts say which key made them."""
    return hashlib.sha256(_derive(secret, b"pan-key-id")).hexdigest()[:12]


class CardVault:
    """Encrypts with the current key; decrypts with the current or any older key."""

    def __init__(self, *, current_key: str, old_keys: tuple[str, ...] = (), fingerprint_key: str):
        self.current_id = key_id(current_key)
        self._keys = {key_id(k): AESGCM(_derive(k, b"pan-encryption-v1")) for k in (current_key, *old_keys)}
        self._fingerprint_key = _derive(fingerprint_key, b"pan-fingerprint-v1")

    def fingerprint(self, pan: str) -> str:
        return hmac.new(self._fingerprint_key, pan.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, pan: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.current_id].encrypt(nonce, pan.encode(), self.current_id.encode())
        return f"v1:{self.current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str) -> str:
        version, kid, payload = token.split(":", 2)
        if version != "v1" or kid not in self._keys:
            raise UnknownKeyError(f"no key {kid!r} to decrypt with")
        raw = base64.b64decode(payload)
        return self._keys[kid].decrypt(raw[:12], raw[12:], kid.encode()).decode()

    def key_of(self, token: str) -> str:
        return token.split(":", 2)[1]
