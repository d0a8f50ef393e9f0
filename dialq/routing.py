"""Task and queue names: stable contracts other applications and operators rely on."""

# Tasks. Renaming one strands the messages already queued under the old name.
PLACE_CALL = "dialq.place_call"  # by-name intake from any Celery client: kwargs {"request": {...}}
DIAL = "dialq.dial"  # internal: args [call_id]
SWEEP = "dialq.sweep"  # beat, the watchdog: repair stuck states, republish lost messages
DELIVER_WEBHOOKS = "dialq.deliver_webhooks"  # args [call_id]: send its pending events
SWEEP_WEBHOOKS = "dialq.sweep_webhooks"  # beat: deliveries due again, or nudges that were lost
DISPATCH_SCHEDULES = "dialq.dispatch_schedules"  # beat: turn due occurrences into calls
WATCH_CALL = "dialq.watch_call"  # a live call: end seen? maximum duration? cancel? then again
HARVEST_INSIGHTS = "dialq.harvest_insights"  # an ended call: fetch transcript and insights
SWEEP_INSIGHTS = "dialq.sweep_insights"  # beat: harvests never started, or due again and lost

# Queues, one per kind of work, so a backlog of one never delays another.
QUEUE_DIAL = "dialq.dial"
QUEUE_LIFECYCLE = "dialq.lifecycle"
QUEUE_WEBHOOKS = "dialq.webhooks"
QUEUE_SWEEP = "dialq.sweep"
# Harvests apart from watches: a look at a live call ends it and frees its slot, so it must not
# wait behind the harvests of the calls that ended before it.
QUEUE_INSIGHTS = "dialq.insights"
ALL_QUEUES = (QUEUE_DIAL, QUEUE_LIFECYCLE, QUEUE_WEBHOOKS, QUEUE_SWEEP, QUEUE_INSIGHTS)

# Redis keys all start here, so one Redis can serve several deployments side by side.
REDIS_PREFIX = "dialq:"

# Where each call-id task goes; publishing by name looks its queue up here.
QUEUE_FOR = {
    DIAL: QUEUE_DIAL,
    DELIVER_WEBHOOKS: QUEUE_WEBHOOKS,
    WATCH_CALL: QUEUE_LIFECYCLE,
    HARVEST_INSIGHTS: QUEUE_INSIGHTS,
}
