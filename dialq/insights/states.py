"""The states of a call's insights harvest."""

from __future__ import annotations

import enum


class InsightsStatus(enum.StrEnum):
    PENDING = "pending"  # harvesting: not ready yet, or a harvest is in flight
    READY = "ready"
    UNAVAILABLE = "unavailable"  # given up; `reason` says why

    @property
    def is_final(self) -> bool:
        return self is not InsightsStatus.PENDING
