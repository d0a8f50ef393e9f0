"""Issue #20, the store part: every state change records the state it left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialq.calls.read import call_detail
from dialq.calls.states import DIALABLE, RESOLVABLE
from dialq.store import Call, CallStatus, Database
from dialq.store import calls_repo as repo

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def a_call(call_id: str) -> Call:
    return Call(
        id=call_id,
        status=CallStatus.QUEUED.value,
        account="default",
        phone_number="+14155550123",
        request={"phone_number": "+14155550123"},
        priority=5,
        max_duration_s=3600,
        deadline_at=T0 + timedelta(hours=1),
        start_attempts=0,
        failures=0,
        capacity_waits=0,
        created_at=T0,
        updated_at=T0,
    )


def test_a_move_allowed_from_several_states_records_the_state_the_call_left(
    db: Database,
) -> None:
    # given a queued call
    with db.transaction() as session:
        repo.add_call(session, a_call("fh1"))
    # when it is claimed and connected through moves allowed from several states each
    for to, from_ in ((CallStatus.DIALING, DIALABLE), (CallStatus.CONNECTED, RESOLVABLE)):
        with db.transaction() as session:
            assert repo.transition(session, "fh1", from_=from_, to=to, now=T0)
    # then every event names the state it came from, as the webhook's previous_state does
    with db.sessions() as session:
        found = repo.get_call(session, "fh1")
        assert found is not None
        events = call_detail(found)["events"]
    assert [(e["from"], e["to"]) for e in events] == [
        (None, "queued"),
        ("queued", "dialing"),
        ("dialing", "connected"),
    ]
