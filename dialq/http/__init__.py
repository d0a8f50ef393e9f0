"""dialq's HTTP API: place, list, read and cancel calls from any language (`dialq api`).

`dialq.http.app.create_app(settings)` builds the FastAPI application; see docs/http-api.md.
Nothing is imported here, so `dialq.http.keys` stays cheap for the CLI.
"""
