"""Calls by state at the cost of what changed, not of all history (the metrics' gauges, the
dashboard's counts per account).

Triggers (migration 0010) write a signed row per change of a call's state into
`call_state_counts`, with the call's account, in the transaction that makes the change: inserts
only, so concurrent transitions never wait on a shared counter row and cannot deadlock on one.
`fold` replaces the oldest rows by one row per (account, state) with their sum; the sum per
(account, state) stays exact at every instant, because the rows a fold deletes (DELETE ...
RETURNING) are re-added, as their sum, in the same transaction, and a row two folds both reach
is deleted, and so re-added, by one only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from dialq.store.tables import CallStateCount

# Rows one fold reads: ten changes a call, so a few hundred calls' worth. Bounded, so a fold
# is a short transaction however long nobody folded; the next takes the rest.
FOLD_BATCH = 5000


def count_by_status(session: Session, accounts: Collection[str] | None = None) -> dict[str, int]:
    """How many calls (of `accounts` only, if given) are in each state, states with none absent:
    exact, in one statement (one snapshot), reading the folded rows and the changes since the
    last fold. A read only: a reader never takes the write lock a fold needs."""
    total = func.sum(CallStateCount.delta)
    query = select(CallStateCount.status, total).group_by(CallStateCount.status)
    if accounts is not None:
        query = query.where(CallStateCount.account.in_(sorted(accounts)))
    rows = session.execute(query.having(total != 0)).all()
    return {status: int(count) for status, count in rows}


def fold(session: Session, batch: int = FOLD_BATCH) -> int:
    """Sum the oldest `batch` rows into one per (account, state), in the caller's transaction;
    returns how many rows it took (folding again changes nothing but the ids)."""
    oldest = select(CallStateCount.id).order_by(CallStateCount.id).limit(batch)
    taken = session.execute(
        delete(CallStateCount)
        .where(CallStateCount.id.in_(oldest.scalar_subquery()))
        .returning(CallStateCount.account, CallStateCount.status, CallStateCount.delta)
        .execution_options(synchronize_session=False)
    ).all()
    sums: Counter[tuple[str, str]] = Counter()
    for account, status, delta in taken:
        sums[(account, status)] += int(delta)
    _add(session, {key: n for key, n in sums.items() if n})
    return len(taken)


def _add(session: Session, sums: dict[tuple[str, str], int]) -> None:
    if sums:
        session.execute(
            insert(CallStateCount),
            [{"account": a, "status": s, "delta": n} for (a, s), n in sorted(sums.items())],
        )
