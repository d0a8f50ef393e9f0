"""The API process's trust in keys it found: for DIALQ_API_KEY_CACHE_S, and no longer."""

from __future__ import annotations

from dialq.http.principal import KnownKeys, Principal

SALES = Principal("k1", frozenset({"sales"}), frozenset({"calls:write"}))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Database:
    """The keys table as `find` sees it: which digests are valid now, and how often asked."""

    def __init__(self) -> None:
        self.valid: dict[str, Principal] = {"d1": SALES}
        self.asked = 0

    def find(self, digest: str) -> Principal | None:
        self.asked += 1
        return self.valid.get(digest)


def test_a_valid_key_is_looked_up_once_per_window_and_a_revoked_one_is_refused_after_it() -> None:
    # given keys trusted for 5 s
    clock, db = Clock(), Database()
    keys = KnownKeys(5.0, timer=clock)
    # when the same key comes 50 times within the window
    seen = [keys.get("d1", db.find) for _ in range(50)]
    # then the database was asked once
    assert seen == [SALES] * 50
    assert db.asked == 1
    # when the key is revoked, it is still trusted until the window ends
    del db.valid["d1"]
    clock.now += 4.9
    assert keys.get("d1", db.find) == SALES
    # and once it ends, the database is asked again and the key is refused
    clock.now += 0.2
    assert keys.get("d1", db.find) is None
    assert db.asked == 2


def test_unknown_keys_are_never_trusted_so_each_is_looked_up_every_time() -> None:
    clock, db = Clock(), Database()
    keys = KnownKeys(5.0, timer=clock)
    assert [keys.get("nope", db.find) for _ in range(3)] == [None] * 3
    assert db.asked == 3
    # and a key made after a miss is found at once, not after a window
    db.valid["nope"] = SALES
    assert keys.get("nope", db.find) == SALES


def test_a_window_of_zero_asks_the_database_on_every_request() -> None:
    db = Database()
    keys = KnownKeys(0.0)
    assert [keys.get("d1", db.find) for _ in range(3)] == [SALES] * 3
    assert db.asked == 3
