"""What the browser tests share: signing in, shooting screens, and a log of everything the
browser sent and received, to search for what must never be there."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Width of a small laptop, and of a phone.
WIDE = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}


@dataclass
class NetworkLog:
    """Every URL the page asked for, every request body but the sign-in form's, and every
    response body that is not a stream."""

    entries: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("request", self._request)
        page.on("response", self._response)

    def _request(self, request: Any) -> None:
        self.entries.append(request.url)
        self.entries.extend(f"{k}: {v}" for k, v in request.headers.items() if k != "cookie")
        if request.post_data and not request.url.endswith("/dashboard/sign-in"):
            self.entries.append(request.post_data)

    def _response(self, response: Any) -> None:
        self.entries.extend(f"{k}: {v}" for k, v in response.headers.items())
        if "event-stream" in response.headers.get("content-type", ""):
            return
        # Redirects and aborted loads have no body to read.
        with suppress(Exception):
            self.entries.append(response.text())

    def text(self) -> str:
        return "\n".join(self.entries)


def sign_in(page: Any, base_url: str, key: str) -> None:
    page.goto(f"{base_url}/dashboard/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/dashboard/calls")


def shoot(page: Any, folder: Path, name: str) -> None:
    """The page at a laptop's width, then at a phone's."""
    for label, size in (("1024", WIDE), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDE)
