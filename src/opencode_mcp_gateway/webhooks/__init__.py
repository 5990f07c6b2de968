"""Completion webhooks: tell a caller (and the platform) when a task ends or needs input,
signed per Standard Webhooks, at least once, by one replica, across restarts.

One small module per job, none of which reads the settings (the assembly in `app.py`
hands each what it needs):

* `policy`: which `notify_url` a caller may give (WEBHOOK_URL_ALLOWLIST), refused before
  any task starts;
* `events`: the event kinds, their deterministic ids and their bounded bodies, from a task's view;
* `signing`: the Standard Webhooks headers, by the `standardwebhooks` library;
* `delivery`: retries with a growing back-off within WEBHOOK_RETRY_SECONDS, a bounded
  attempt, no redirects, a bounded number of pending deliveries;
* `records`: the session's `notify` record: the target, and what was delivered;
* `duty`: which replica sends a session's events;
* `watcher`: per worker, notices ends and opened requests (events and sweeps).

Arrows: webhooks may import `tasks`, `opencode`, `observability`, `primitives` (and the
package's version); never `config` (settings come in as values), `fleet`, `tools`, `edge`
or the entry points. `tools` imports it to check a `notify_url`; `app.py` assembles it.
"""

from .delivery import Deliverer, Job, retry_delays
from .duty import Duty
from .events import KINDS, Event, event_id, events_of
from .policy import WebhookRefused, check_notify_url
from .records import Records, Target
from .signing import Signer
from .watcher import Watcher

__all__ = [
    "KINDS",
    "Deliverer",
    "Duty",
    "Event",
    "Job",
    "Records",
    "Signer",
    "Target",
    "Watcher",
    "WebhookRefused",
    "check_notify_url",
    "event_id",
    "events_of",
    "retry_delays",
]
