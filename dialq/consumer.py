"""The worker's Celery consumer: poison messages set aside (dialq.poison), and the task events
Flower reads sent in batches.

Celery buffers a worker's task events and flushes them at the next turn of its event loop after
each one: on a busy worker that is a publish for every event or two (received, started,
succeeded: three a task), about a tenth of a dial's CPU (bench/dispatch.py). Here the first
event of a batch sets one flush a moment later, and the events of that moment go in it. A
dial's own WAITING or REDIAL event is sent through the same batch (dialq.flower), after the
task's received and started events, so Flower never sees those overwrite it.
"""

from __future__ import annotations

import logging

from dialq.poison import GuardedConsumer

log = logging.getLogger("dialq.worker")

# How long events wait to be sent together: Flower shows a task's state at most this much late.
EVENT_BATCH_S = 0.1


class Consumer(GuardedConsumer):
    _flush_set = False

    def on_send_event_buffered(self) -> None:
        # Pool threads call this too: they only raise the flag and ask the loop's thread to set
        # the timer, which only that thread touches. A race sets two flushes, which is harmless.
        if not self.hub or self._flush_set:
            return
        self._flush_set = True
        self.hub.call_soon(self._set_flush)

    def _set_flush(self) -> None:
        self.hub.call_later(EVENT_BATCH_S, self._flush_batch)

    def _flush_batch(self) -> None:
        # Lowered first: an event buffered from here on sets the next flush, so none waits long.
        self._flush_set = False
        self._flush_events()

    def on_close(self) -> None:
        # The connection is going (a reconnect follows): Celery carries over only the events
        # that failed to send, not a batch still waiting, so the batch goes now (on failure it
        # joins those carried over).
        self._flush_now()
        super().on_close()

    def shutdown(self) -> None:
        # A warm shutdown stops the loop before the pool's last tasks end: their events (and a
        # batch whose timer never fired) go now, before the dispatcher closes.
        self._flush_now()
        super().shutdown()

    def _flush_now(self) -> None:
        try:
            self._flush_events()
        except Exception:  # monitoring must never stop a worker from closing
            log.warning("could not send the last task events", exc_info=True)
