"""The calls dashboard: server-rendered pages for operators, served by `dialq api`.

It reads through the same store functions as the API and acts through the same
`dialq.api` calls; a browser signs in once with an API key and then holds only a session cookie.
"""

from dialq.http.dashboard.mount import mount
from dialq.http.dashboard.signin_routes import PREFIX

__all__ = ["PREFIX", "mount"]
