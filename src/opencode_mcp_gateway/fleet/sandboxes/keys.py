"""Sandbox names and secrets, derived from one key so that any gateway process computes them.

* A caller's sandbox is `c-` + HMAC(key, caller)[:24]; a task's is `t-` + 10 random hex
  digits + HMAC(key, caller, those digits)[:16]. A name never holds the caller's name (it
  shows in task ids, labels and paths), yet the gateway can tell from the name alone, with
  no store and before anything is woken, whether a caller may enter it.
* A sandbox's OpenCode server password and its LLM-proxy token are HMACs of its name: a
  restart, or another replica holding the same key, computes the same ones, and the LLM
  proxy checks a token by computing it again (constant time). The token is valid for that
  sandbox only; neither is ever logged.

The key is REQUEST_STATE_KEY when set (the secret the replicas already share), else a random
key kept in the sandboxes' state directory (0600, created once), which every gateway
process on that directory shares.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from ...tasks.ids import SANDBOX_NAME

NAME = re.compile(rf"^(?:{SANDBOX_NAME})$")
_CALLER, _RANDOM, _TASK_MAC = 24, 10, 16


def is_sandbox_name(name: str) -> bool:
    return bool(NAME.match(name))


def scope_of(name: str) -> str:
    return "caller" if name.startswith("c-") else "task"


class SandboxKeys:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def load(cls, shared: str | None, state_root: Path) -> SandboxKeys:
        """`shared`: REQUEST_STATE_KEY (replicas); else a key file under `state_root`."""
        if shared:
            return cls(hmac.new(shared.encode(), b"ocgw-sandbox-key", hashlib.sha256).digest())
        state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = state_root / "key"
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
        return cls(path.read_text().strip().encode())

    def _mac(self, *parts: str) -> str:
        return hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()

    def caller_sandbox(self, caller: str) -> str:
        return "c-" + self._mac("caller", caller)[:_CALLER]

    def task_sandbox(self, caller: str) -> str:
        nonce = secrets.token_hex(_RANDOM // 2)
        return "t-" + nonce + self._mac("task", caller, nonce)[:_TASK_MAC]

    def belongs_to(self, name: str, caller: str) -> bool:
        """Whether sandbox `name` is `caller`'s (constant time in what an attacker controls)."""
        if name.startswith("c-"):
            return hmac.compare_digest(name, self.caller_sandbox(caller))
        if name.startswith("t-") and len(name) == 2 + _RANDOM + _TASK_MAC:
            nonce, mac = name[2 : 2 + _RANDOM], name[2 + _RANDOM :]
            return hmac.compare_digest(mac, self._mac("task", caller, nonce)[:_TASK_MAC])
        return False

    def owner_hash(self, caller: str) -> str:
        return self._mac("owner", caller)[:16]

    def password(self, name: str) -> str:
        return self._mac("opencode-password", name)

    def llm_token(self, name: str) -> str:
        return f"{name}.{self._mac('llm-token', name)}"

    def accepts_llm_token(self, given: bytes) -> bool:
        name, dot, _ = given.decode("latin-1").partition(".")
        if not dot or not is_sandbox_name(name):
            return False
        return hmac.compare_digest(given, self.llm_token(name).encode())
