"""Task and queue names: stable contracts other applications and operators rely on."""

# Tasks. Renaming one strands the messages already queued under the old name.
PLACE_CALL = "dialq.place_call"  # by-name intake from any Celery client: kwargs {"request": {...}}
DIAL = "dialq.dial"  # internal: args [call_id]
SWEEP = "dialq.sweep"  # beat: republish due calls whose message is missing or stale

# Queues, one per kind of work, so a backlog of one never delays another.
QUEUE_DIAL = "dialq.dial"
QUEUE_LIFECYCLE = "dialq.lifecycle"
QUEUE_WEBHOOKS = "dialq.webhooks"
QUEUE_SWEEP = "dialq.sweep"
ALL_QUEUES = (QUEUE_DIAL, QUEUE_LIFECYCLE, QUEUE_WEBHOOKS, QUEUE_SWEEP)

# Redis keys all start here, so one Redis can serve several deployments side by side.
REDIS_PREFIX = "dialq:"
