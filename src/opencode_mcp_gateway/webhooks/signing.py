"""Standard Webhooks signatures, made by the maintained `standardwebhooks` library.

`webhook-id` names the event (the same for every retry), `webhook-timestamp` is the
attempt's time (receivers refuse stale ones, so every attempt is signed afresh) and
`webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. The secret stays
inside the library's object: nothing here can print it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook


class Signer:
    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def __repr__(self) -> str:
        return "Signer(<secret>)"

    def headers(self, event_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
        moment = now or datetime.now(UTC)
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(floor(moment.timestamp())),
            "webhook-signature": self._webhook.sign(event_id, moment, body),
            "content-type": "application/json",
        }
