"""Why a call has no transcript or insights to show yet, or never will: pure, no I/O.

The CLI prints the reason; the HTTP API answers 404 when there never will be any (the call
ended without connecting) and 409 when there may be later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dialq.calls.states import TERMINAL, CallStatus
from dialq.insights.states import InsightsStatus


@dataclass(frozen=True)
class Missing:
    """There is nothing to show: `final` when there never will be, and why in plain words."""

    final: bool
    reason: str


def never_connected(status: str, connected: bool) -> str | None:
    """Why a call has no insights at all, when the reason is that it never talked to anyone.
    A completed call connected (only a live call completes), whatever its row kept."""
    if connected or status == CallStatus.COMPLETED:
        return None
    if CallStatus(status) in TERMINAL:
        return f"this call never connected (it is {status}), so it has no transcript"
    return f"this call has not connected yet (it is {status})"


def _unconnected(status: str, connected: bool) -> Missing | None:
    why = never_connected(status, connected)
    if why is None:
        return None
    return Missing(final=CallStatus(status) in TERMINAL, reason=why)


def missing_insights(
    status: str, connected: bool, insights: Mapping[str, Any] | None
) -> Missing | None:
    """Why there are no insights to show (the call's status, whether it ever connected, its
    insights as stored or None), or None when a harvest has an answer (ready or given up)."""
    if insights is None:
        unconnected = _unconnected(status, connected)
        if unconnected is not None:
            return unconnected
        return Missing(False, "insights not harvested yet (has the call ended?)")
    if insights["status"] == InsightsStatus.PENDING:
        why = f" ({insights['reason']})" if insights.get("reason") else ""
        return Missing(False, f"insights still pending{why}")
    return None


def missing_transcript(
    status: str, connected: bool, insights: Mapping[str, Any] | None
) -> Missing | None:
    """Why there is no transcript to show, or None when there is one."""
    missing = missing_insights(status, connected, insights)
    if missing is not None or insights is None:
        return missing
    if not insights.get("messages"):
        return Missing(True, f"insights {insights['status']} ({insights.get('reason')})")
    return None
