"""Static tokens: MCP_BEARER_TOKEN (the identity `default`) and MCP_API_KEYS_FILE.

The keys file has one `name token` pair per line (`#` comments and blank lines are
ignored); each name is its own identity. The file is read again when it changes, so a
mounted Kubernetes Secret can rotate keys without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from pathlib import Path

from ..config import ConfigError
from .identity import Identity

log = logging.getLogger(__name__)

DEFAULT = "default"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
RECHECK_SECONDS = 2.0


class KeysFileError(ConfigError):
    """A keys file that cannot be used; the message names the file and line (never a token)."""


def parse_keys(text: str, source: str) -> list[tuple[str, bytes]]:
    pairs: list[tuple[str, bytes]] = []
    seen: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not NAME.match(fields[0]):
            raise KeysFileError(
                f"MCP_API_KEYS_FILE {source} line {number}: expected `name token` (a name of letters, digits "
                "and ._@+-, one space, the token)"
            )
        token = fields[1].encode()
        if len(token) < 16:
            raise KeysFileError(f"MCP_API_KEYS_FILE {source} line {number}: the token is shorter than 16 characters")
        digest = hashlib.sha256(token).digest()
        if digest in seen:
            raise KeysFileError(f"MCP_API_KEYS_FILE {source} line {number}: this token is already given to a name")
        seen.add(digest)
        pairs.append((fields[0], token))
    return pairs


class StaticTokens:
    def __init__(self, bearer_token: str | None, keys_file: str | None) -> None:
        self._bearer = bearer_token.encode() if bearer_token else None
        self._file = Path(keys_file) if keys_file else None
        self._keys: list[tuple[str, bytes]] = []
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        if self._file is not None:
            self._load()  # a bad file stops start-up

    @property
    def configured(self) -> bool:
        return self._bearer is not None or self._file is not None

    def identify(self, token: str) -> Identity | None:
        """The identity whose static token this is, or None. Compares with every token in
        constant time, so timing tells nothing about which (or whether one) matched."""
        self._maybe_reload()
        given = token.encode()
        found: str | None = None
        if self._bearer is not None and hmac.compare_digest(given, self._bearer):
            found = DEFAULT
        for name, key in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = name
        return Identity(name=found) if found else None

    def _load(self) -> None:
        assert self._file is not None
        try:
            stat = self._file.stat()
            text = self._file.read_text()
        except OSError as exc:
            raise KeysFileError(f"MCP_API_KEYS_FILE {self._file} cannot be read ({exc.strerror})") from None
        self._keys = parse_keys(text, str(self._file))
        self._stamp = (stat.st_mtime, stat.st_size)

    def _maybe_reload(self) -> None:
        if self._file is None or time.monotonic() - self._checked < RECHECK_SECONDS:
            return
        self._checked = time.monotonic()
        try:
            stat = os.stat(self._file)
            if (stat.st_mtime, stat.st_size) != self._stamp:
                self._load()
                log.info("MCP_API_KEYS_FILE %s reloaded: %d keys", self._file, len(self._keys))
        except (OSError, KeysFileError) as exc:
            log.error("MCP_API_KEYS_FILE not reloaded, keeping the keys read before: %s", exc)
