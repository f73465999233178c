"""The backup file: a tar archive holding ``manifest.json`` first and then the database dump,
optionally sealed in chunked AES-256-GCM. No Django import: ``audit.backup`` decides what
goes in, this module only writes, seals, opens and reads it, streaming, never the whole dump in
memory.

Encrypted layout (all integers big-endian)::

    header = MAGIC (16) ‖ salt (16) ‖ chunk size (4) ‖ key check (16)
    then one record per chunk: AES-256-GCM(key, nonce = index (11) ‖ final flag (1),
                                           plaintext chunk, associated data = header)

Every record is ``chunk size`` plaintext bytes plus a 16-byte tag, except the last, which may be
shorter (or empty) and is the only one sealed with the final flag. That is the STREAM
construction (Hoang, Reyhanitabar, Rogaway and Vizár, 2015): a record moved, dropped, duplicated
or cut off fails authentication, as does a file cut at a record boundary (its new last record
was not sealed as final) or one with anything after the final record. The keys come from
``BACKUP_ENCRYPTION_KEY`` through HKDF with a random salt per file, so no two files share a key
and the counter nonces can never repeat under one key. We chose AES-GCM over Fernet for the
chunks: the index and final flag go in the nonce instead of a hand-parsed plaintext prefix,
nothing is base64-inflated by a third, and it is the construction ``fraud/transactions/cards.py`` already uses.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import struct
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CGBACKUP-AESGCM1"  # 16 bytes; `head -c 16 FILE` tells an encrypted backup at a glance
_SALT_BYTES = 16
_CHECK_BYTES = 16
_HEADER = struct.Struct(f">{len(MAGIC)}s{_SALT_BYTES}sI{_CHECK_BYTES}s")
_TAG_BYTES = 16
# 1 MiB: 16 bytes of tag per MiB, and a reader holds at most two records in memory.
CHUNK_BYTES = 1 << 20
_MAX_CHUNK_BYTES = 64 << 20  # a header asking for more is damaged, not a backup we made
MIN_KEY_CHARS = 32

MANIFEST_NAME = "manifest.json"
_MANIFEST_MAX_BYTES = 1 << 20
_COPY_BYTES = 1 << 20


class BackupFileError(Exception):
    """The file is not a readable backup: damaged, altered, truncated or of an unknown shape."""


class WrongKeyError(BackupFileError):
    """The file was sealed with another BACKUP_ENCRYPTION_KEY."""


def _keys(secret: str, salt: bytes) -> tuple[bytes, bytes]:
    """(encryption key, key-check key), both from the secret and this file's salt."""
    if len(secret) < MIN_KEY_CHARS:
        raise ValueError(f"BACKUP_ENCRYPTION_KEY must be at least {MIN_KEY_CHARS} characters")
    okm = HKDF(algorithm=SHA256(), length=64, salt=salt, info=b"cipherguard-backup-v1").derive(secret.encode())
    return okm[:32], okm[32:]


def _key_check(check_key: bytes, salt: bytes, chunk_bytes: int) -> bytes:
    # A MAC of the header under a sibling key: tells "wrong key" apart from "damaged file"
    # before any record is read, and reveals nothing about the key itself.
    return hmac.new(check_key, MAGIC + salt + chunk_bytes.to_bytes(4, "big"), hashlib.sha256).digest()[:_CHECK_BYTES]


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


class EncryptingWriter:
    """A write-only stream that seals what it is given into ``raw``. Call ``finish()`` once at
    the end: it seals the final record (``raw`` itself is left open)."""

    def __init__(self, raw: IO[bytes], secret: str, *, chunk_bytes: int = CHUNK_BYTES):
        salt = os.urandom(_SALT_BYTES)
        key, check_key = _keys(secret, salt)
        self._header = _HEADER.pack(MAGIC, salt, chunk_bytes, _key_check(check_key, salt, chunk_bytes))
        self._aead = AESGCM(key)
        self._raw = raw
        self._chunk = chunk_bytes
        self._buffer = bytearray()
        self._index = 0
        self._finished = False
        raw.write(self._header)

    def _seal(self, data: bytes, *, final: bool) -> None:
        self._raw.write(self._aead.encrypt(_nonce(self._index, final), data, self._header))
        self._index += 1

    def write(self, data: bytes) -> int:
        if self._finished:
            raise ValueError("write after finish()")
        self._buffer += data
        # Strictly more than a chunk: the final record must carry the last bytes, so a full
        # chunk is only sealed as non-final once we know something follows it.
        while len(self._buffer) > self._chunk:
            self._seal(bytes(self._buffer[: self._chunk]), final=False)
            del self._buffer[: self._chunk]
        return len(data)

    def finish(self) -> None:
        if not self._finished:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._finished = True


def _read_exact(raw: IO[bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        part = raw.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class DecryptingReader:
    """A read-only stream of what ``EncryptingWriter`` sealed. Raises ``WrongKeyError`` at once
    for another key, and ``BackupFileError`` at the first record that fails authentication, or
    at the end when the final record is missing. A caller has read everything authentic only
    once ``read`` has returned ``b""``."""

    def __init__(self, raw: IO[bytes], secret: str):
        header = _read_exact(raw, _HEADER.size)
        if len(header) < _HEADER.size or not header.startswith(MAGIC):
            raise BackupFileError("not an encrypted CipherGuard backup (bad header)")
        _, salt, chunk_bytes, check = _HEADER.unpack(header)
        if not 0 < chunk_bytes <= _MAX_CHUNK_BYTES:
            raise BackupFileError("the encryption header is damaged")
        key, check_key = _keys(secret, salt)
        if not hmac.compare_digest(check, _key_check(check_key, salt, chunk_bytes)):
            raise WrongKeyError(
                "BACKUP_ENCRYPTION_KEY is not the key this backup was encrypted with (or its header was altered)"
            )
        self._header = header
        self._aead = AESGCM(key)
        self._raw = raw
        self._record = chunk_bytes + _TAG_BYTES
        self._index = 0
        self._plain = b""
        self._offset = 0
        self._done = False
        self._next = _read_exact(raw, self._record)  # one record of look-ahead tells the last one

    def _open_next(self) -> None:
        record = self._next
        if not record:
            raise BackupFileError(f"the file ends after record {self._index} without its final record (truncated)")
        self._next = _read_exact(self._raw, self._record)
        final = not self._next
        try:
            self._plain = self._aead.decrypt(_nonce(self._index, final), record, self._header)
        except InvalidTag:
            raise BackupFileError(
                f"record {self._index} failed authentication: the file was altered, reordered or truncated"
            ) from None
        self._offset = 0
        self._index += 1
        self._done = final

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if self._offset >= len(self._plain):
                if self._done:
                    break
                self._open_next()
                continue
            take = (
                len(self._plain) - self._offset if size < 0 else min(size - len(out), len(self._plain) - self._offset)
            )
            out += self._plain[self._offset : self._offset + take]
            self._offset += take
        return bytes(out)


@dataclass(frozen=True)
class Extracted:
    manifest: dict[str, Any]
    dump: Path
    sha256: str
    size: int


def write_archive(out: IO[bytes], *, manifest: dict[str, Any], dump: Path, dump_name: str) -> None:
    """Stream the manifest, then the dump file, as an uncompressed tar (the PostgreSQL dump is
    compressed already)."""
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mode, info.mtime = len(body), 0o600, now
        tar.addfile(info, io.BytesIO(body))
        info = tarfile.TarInfo(dump_name)
        info.size, info.mode, info.mtime = dump.stat().st_size, 0o600, now
        with dump.open("rb") as handle:
            tar.addfile(info, handle)


def read_archive(src: IO[bytes], *, workdir: Path, dump_names: set[str]) -> Extracted:
    """Read the manifest and copy the dump into ``workdir``, hashing it on the way. Only the two
    expected regular files are accepted (nothing is extracted by a name the file chooses), and
    ``src`` is read to its end, so a decrypting source has authenticated every record."""
    manifest: dict[str, Any] | None = None
    dump: Path | None = None
    digest, size = hashlib.sha256(), 0
    try:
        with tarfile.open(fileobj=src, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    raise BackupFileError(f"unexpected entry {member.name!r} in the backup")
                handle = tar.extractfile(member)
                assert handle is not None  # noqa: S101 - isfile() guarantees a file object
                if member.name == MANIFEST_NAME and manifest is None:
                    if member.size > _MANIFEST_MAX_BYTES:
                        raise BackupFileError("the manifest is implausibly large")
                    try:
                        manifest = json.loads(handle.read())
                    except ValueError:
                        raise BackupFileError("the manifest is not valid JSON") from None
                elif member.name in dump_names and manifest is not None and dump is None:
                    dump = workdir / member.name
                    with dump.open("wb") as target:
                        while chunk := handle.read(_COPY_BYTES):
                            digest.update(chunk)
                            size += len(chunk)
                            target.write(chunk)
                else:
                    raise BackupFileError(f"unexpected entry {member.name!r} in the backup")
        while src.read(_COPY_BYTES):  # the tar's padding, and for a sealed file its final record
            pass
    except tarfile.TarError as exc:
        raise BackupFileError(f"not a readable backup archive ({exc})") from None
    if manifest is None or dump is None:
        raise BackupFileError("the backup has no manifest or no database dump (truncated?)")
    return Extracted(manifest=manifest, dump=dump, sha256=digest.hexdigest(), size=size)


def open_backup(path: Path, *, secret: str | None, workdir: Path, dump_names: set[str]) -> tuple[Extracted, bool]:
    """Read a backup file, plain or encrypted (told apart by its first bytes). Returns what was
    extracted and whether the file was encrypted. Every authenticity check has passed when this
    returns; nothing has touched a database."""
    with path.open("rb") as raw:
        encrypted = raw.read(len(MAGIC)) == MAGIC
        raw.seek(0)
        if not encrypted:
            return read_archive(raw, workdir=workdir, dump_names=dump_names), False
        if not secret:
            raise BackupFileError("the backup is encrypted: set BACKUP_ENCRYPTION_KEY to the key it was made with")
        reader = DecryptingReader(raw, secret)
        return read_archive(reader, workdir=workdir, dump_names=dump_names), True  # type: ignore[arg-type]


def file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_COPY_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
