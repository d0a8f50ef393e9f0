"""dialq: place transcribed phone calls through Symbl's Telephony API, with Celery."""

__version__ = "0.1.0"
