"""Signed webhooks for every state change: delivery, payload, signing, guard, transport, sender."""
