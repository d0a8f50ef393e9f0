"""dialq: place transcribed phone calls through Symbl's Telephony API, with Celery.

Producers call `dialq.enqueue_call(request)` and `dialq.cancel_call(call_id)` (see `dialq.api`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CallRequest", "InvalidCallRequest", "cancel_call", "enqueue_call"]

if TYPE_CHECKING:
    from dialq.api import cancel_call, enqueue_call
    from dialq.calls.request import CallRequest, InvalidCallRequest

# Imported on first use: `import dialq` stays cheap for the sandbox, the CLI and workers.
_LAZY = {
    "enqueue_call": "dialq.api",
    "cancel_call": "dialq.api",
    "CallRequest": "dialq.calls.request",
    "InvalidCallRequest": "dialq.calls.request",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dialq' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
