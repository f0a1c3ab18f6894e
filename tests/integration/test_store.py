"""The store on SQLite and PostgreSQL: constraints decide newness, claims are exclusive,
the outbox moves pending -> sent / retry / failed, and the migrated schema equals the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watcher.model import DeliveryStatus, Item, Match, Reason, Severity
from watcher.store.schema import metadata
from watcher.store.store import FeedSpec, PlannedMatch, Store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def item(key: str, link: str | None = None, feed_id: str = "cma-news") -> Item:
    return Item(
        feed_id=feed_id,
        item_key=key,
        title=f"Title {key}",
        link=link,
        summary="summary",
        content="",
        published_at=T0 - timedelta(hours=1),
        authors=("CMA",),
        tags=("mergers",),
    )


def planned(it: Item, rule_id: str = "cma-itc", channels: tuple[str, ...] = ("console", "email")) -> PlannedMatch:
    m = Match(rule_id, it.feed_id, it.item_key, Severity.HIGH, (Reason("title", "invitation to comment", 0, 21),))
    return PlannedMatch(m, "CMA invitation to comment", channels)


def save(store: Store, items: list[Item], plans: list[PlannedMatch], feed_id: str = "cma-news"):  # type: ignore[no-untyped-def]
    return store.save_poll(feed_id, T0, items, plans, etag='"v1"', last_modified=None, next_check_at=T0 + LEASE)


@pytest.fixture
def feeds(store: Store) -> Store:
    store.sync_feeds(
        [
            FeedSpec("cma-news", "https://example.org/cma.atom", "CMA news"),
            FeedSpec("ftc", "https://example.org/ftc.rss"),
        ],
        T0,
    )
    return store


def test_migrated_schema_matches_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    store.migrate()
    store.migrate()


def test_datetimes_come_back_utc_aware(feeds: Store) -> None:
    state = feeds.feed_state("cma-news")
    assert state is not None and state.next_check_at == T0
    assert state.next_check_at.tzinfo is not None and state.is_first_poll


def test_items_are_inserted_once(feeds: Store) -> None:
    items = [item("b"), item("a")]
    first = save(feeds, items, [planned(items[0])])
    assert (first.new_items, first.new_matches, first.new_deliveries) == (2, 1, 2)
    again = save(feeds, items, [planned(items[0])])
    assert (again.new_items, again.new_matches, again.new_deliveries) == (0, 0, 0)
    assert feeds.known_keys("cma-news", ["a", "b", "c"]) == {"a", "b"}
    assert feeds.count_items() == 2


def test_same_link_in_two_feeds_alerts_once_per_rule(feeds: Store) -> None:
    link = "https://www.gov.uk/cma-cases/microsoft-mistral"
    a, b = item("x", link, "cma-news"), item("y", link, "ftc")
    assert save(feeds, [a], [planned(a)], "cma-news").new_matches == 1
    result = save(feeds, [b], [planned(b)], "ftc")
    assert (result.new_items, result.new_matches) == (1, 0)
    other_rule = save(feeds, [item("z", link, "ftc")], [planned(item("z", link, "ftc"), "other-rule")], "ftc")
    assert other_rule.new_matches == 1


def test_feed_claims_are_exclusive(feeds: Store) -> None:
    claimed = feeds.claim_due_feeds(["cma-news", "ftc"], due_by=T0, until=T0 + LEASE, limit=10)
    assert sorted(s.id for s in claimed) == ["cma-news", "ftc"]
    assert feeds.claim_due_feeds(["cma-news", "ftc"], due_by=T0, until=T0 + LEASE, limit=10) == []
    forced = feeds.claim_due_feeds(["ftc"], due_by=None, until=T0 + LEASE * 2, limit=10)
    assert [s.id for s in forced] == ["ftc"]
    # The lease expires: a crashed poller's feed is due again.
    assert [s.id for s in feeds.claim_due_feeds(["cma-news"], due_by=T0 + LEASE, until=T0 + LEASE * 3, limit=10)] == [
        "cma-news"
    ]


def test_claim_two_stores_one_winner(db_url: str) -> None:
    a, b = Store.open(db_url), Store.open(db_url)
    try:
        a.sync_feeds([FeedSpec("f", "https://example.org/f")], T0)
        won = [len(s.claim_due_feeds(["f"], due_by=T0, until=T0 + LEASE, limit=1)) for s in (a, b)]
        assert sorted(won) == [0, 1]
    finally:
        a.close()
        b.close()


def test_failure_and_not_modified_bookkeeping(feeds: Store) -> None:
    assert feeds.record_failure("ftc", T0, "HTTP 503", T0 + LEASE) == 1
    assert feeds.record_failure("ftc", T0, "HTTP 503", T0 + LEASE) == 2
    [status] = [s for s in feeds.feed_statuses() if s.id == "ftc"]
    assert (status.error_count, status.last_error) == (2, "HTTP 503")
    feeds.record_not_modified("ftc", T0, T0 + LEASE)
    state = feeds.feed_state("ftc")
    assert state is not None and state.error_count == 0 and not state.is_first_poll


def test_outbox_lifecycle(feeds: Store) -> None:
    it = item("a", "https://example.org/a")
    save(feeds, [it], [planned(it)])
    alerts = feeds.claim_due_deliveries(T0, LEASE)
    assert sorted(a.channel for a in alerts) == ["console", "email"]
    assert alerts[0].item_title == "Title a" and alerts[0].severity is Severity.HIGH
    assert alerts[0].reasons == ('title contains "invitation to comment"',)
    assert feeds.claim_due_deliveries(T0, LEASE) == []  # claimed
    console, email = sorted(alerts, key=lambda a: a.channel)
    feeds.mark_sent(console.delivery_id, T0)
    feeds.mark_retry(email.delivery_id, "SMTP 550", T0 + timedelta(seconds=30))
    assert feeds.claim_due_deliveries(T0 + timedelta(seconds=10), LEASE) == []
    [retry] = feeds.claim_due_deliveries(T0 + timedelta(seconds=30), LEASE)
    assert retry.delivery_id == email.delivery_id and retry.attempts == 1
    feeds.mark_failed(retry.delivery_id, "gave up")
    feeds.mark_sent(retry.delivery_id, T0)  # a late success cannot resurrect a finished row
    assert feeds.count_deliveries() == {"sent": 1, "failed": 1}
    [failed] = feeds.alert_statuses(status=DeliveryStatus.FAILED)
    assert (failed.attempts, failed.last_error) == (2, "gave up")
    assert feeds.retry_failed([failed.delivery_id], T0) == 1
    assert [a.delivery_id for a in feeds.claim_due_deliveries(T0, LEASE)] == [email.delivery_id]


def test_dry_run_writes_nothing(db_url: str) -> None:
    Store.open(db_url).close()  # migrate for real first
    dry = Store.open(db_url, dry_run=True)
    try:
        dry.sync_feeds([FeedSpec("f", "https://example.org/f")], T0)
        it = item("a", feed_id="f")
        assert save(dry, [it], [planned(it)], "f").new_items == 1
        assert dry.count_items() == 1
    finally:
        dry.close()
    real = Store.open(db_url)
    try:
        assert real.count_items() == 0 and real.feed_statuses() == []
    finally:
        real.close()
