"""The store on SQLite and PostgreSQL: constraints decide newness, claims are exclusive,
the outbox moves pending -> sent / retry / failed, and the migrated schema equals the models."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watcher.model import DeliveryStatus, Item, Match, Reason, Severity
from watcher.store.decide import PlannedMatch, Throttle
from watcher.store.schema import metadata
from watcher.store.store import FeedSpec, Store

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
    assert set(feeds.item_versions("cma-news", ["a", "b", "c"])) == {"a", "b"}
    assert feeds.count_items() == 2


def test_same_link_in_two_feeds_alerts_once_per_rule(feeds: Store) -> None:
    link = "https://www.gov.uk/cma-cases/microsoft-mistral"
    a, b = item("x", link, "cma-news"), item("y", link, "ftc")
    assert save(feeds, [a], [planned(a)], "cma-news").alerted == 1
    result = save(feeds, [b], [planned(b)], "ftc")
    # The match is recorded (nothing is lost), decided as a duplicate, and sends nothing.
    assert (result.new_items, result.new_matches, result.alerted, result.new_deliveries) == (1, 1, 0, 0)
    [trail] = feeds.explain("y")
    assert trail.matches[0].decision == "duplicate"
    assert trail.matches[0].reason is not None and trail.matches[0].reason.startswith("duplicate of story ")
    other_rule = save(feeds, [item("z", link, "ftc")], [planned(item("z", link, "ftc"), "other-rule")], "ftc")
    assert other_rule.alerted == 1


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


def edited(it: Item, summary: str, updated_at: datetime | None = None) -> Item:
    return replace(it, summary=summary, content_hash=f"hash-of-{summary}", updated_at=updated_at)


def test_edits_are_revisions_and_alert_per_new_stage_only_with_notify(feeds: Store) -> None:
    it = replace(item("case", "https://www.gov.uk/cma-cases/x"), content_hash="v1")
    save(feeds, [it], [planned(it)])
    assert feeds.item_versions("cma-news", ["case"]) == {"case": ("v1", None)}
    v2 = edited(it, "Invitation to comment")
    ignore = PlannedMatch(planned(v2).match, "t", ("console",), on_update="ignore")
    result = feeds.save_poll(
        "cma-news", T0, [], [ignore], etag=None, last_modified=None, next_check_at=T0, updated=[v2]
    )
    assert (result.updated_items, result.new_matches, result.alerted) == (1, 1, 0)
    v3 = edited(it, "Phase 2")
    stage = Match("cma-itc", "cma-news", "case", Severity.HIGH, (Reason("summary", "phase 2", 0, 7),))
    notify = PlannedMatch(stage, "t", ("console",), on_update="notify")
    result = feeds.save_poll(
        "cma-news", T0, [], [notify], etag=None, last_modified=None, next_check_at=T0, updated=[v3]
    )
    assert (result.updated_items, result.alerted, result.new_deliveries) == (1, 1, 1)
    # Same text again: not an edit at all. A re-wording with the same matched phrases: no new stage.
    again = feeds.save_poll("cma-news", T0, [], [notify], etag=None, last_modified=None, next_check_at=T0, updated=[v3])
    assert again.updated_items == 0
    v4 = edited(it, "Phase 2 (corrected typo)")
    reworded = feeds.save_poll(
        "cma-news", T0, [], [notify], etag=None, last_modified=None, next_check_at=T0, updated=[v4]
    )
    assert (reworded.updated_items, reworded.alerted) == (1, 0)
    [trail] = feeds.explain("case")
    assert trail.revision == 4
    assert [(m.revision, m.decision) for m in trail.matches] == [
        (1, "alerted"),
        (2, "update_ignored"),
        (3, "alerted"),
        (4, "duplicate"),
    ]


def test_silenced_and_throttled_matches_are_recorded_with_reasons(feeds: Store) -> None:
    silence = feeds.add_silence("cma-itc", "Mistral", T0 - LEASE, T0 + timedelta(days=7), "known deal")
    assert [s.id for s in feeds.active_silences(T0)] == [silence.id]
    a = item("a", "https://example.org/a")
    quiet = PlannedMatch(planned(a).match, "t", ("console",), silenced_by=silence.describe())
    assert save(feeds, [a], [quiet]).alerted == 0
    throttle = Throttle(max_alerts=1, per=timedelta(days=1))
    b, c = item("b", "https://example.org/b"), item("c", "https://example.org/c")
    first = save(feeds, [b], [PlannedMatch(planned(b).match, "t", ("console",), throttle=throttle)])
    second = save(feeds, [c], [PlannedMatch(planned(c).match, "t", ("console",), throttle=throttle)])
    assert (first.alerted, second.alerted) == (1, 0)
    decisions = {t.item_key: (t.matches[0].decision, t.matches[0].reason) for k in "abc" for t in feeds.explain(k)}
    assert decisions["a"] == ("silenced", silence.describe())
    assert decisions["b"] == ("alerted", None)
    assert decisions["c"] == ("throttled", "1 alerts within 1d; the rule allows 1")
    assert feeds.expire_silence(silence.id, T0) and feeds.active_silences(T0) == []
    assert [s.id for s in feeds.silences(T0, include_expired=True)] == [silence.id]


def test_keys_for_links(feeds: Store) -> None:
    it = item("guid-1", "https://example.org/story")
    save(feeds, [it], [])
    assert feeds.keys_for_links("cma-news", ["https://example.org/story", "https://example.org/other"]) == {
        "https://example.org/story": "guid-1"
    }


def story_item(key: str, feed_id: str, title: str, lead: str, link: str) -> Item:
    return Item(feed_id, key, title, link, lead, "", T0, content_hash=key)


def test_one_story_from_five_feeds_alerts_once_then_confirmation(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        feeds = ["techwire", "dailybiz", "policyblog", "aggregator", "cma-news"]
        store.sync_feeds([FeedSpec(f, f"https://{f}.example/feed") for f in feeds], T0)
        press = [
            story_item(
                "1",
                "techwire",
                "UK regulator seeks views on Microsoft's Mistral AI tie-up",
                "Britain's competition watchdog is inviting comments on Microsoft's partnership with Mistral AI.",
                "https://techwire.example/ms-mistral",
            ),
            story_item(
                "2",
                "dailybiz",
                "Microsoft's Mistral deal faces CMA scrutiny",
                "The CMA opened an invitation to comment on Microsoft's partnership with Mistral AI.",
                "https://dailybiz.example/ms-mistral",
            ),
            story_item(
                "3",
                "policyblog",
                "Competition and Markets Authority looks at Microsoft and Mistral AI",
                "Microsoft's partnership with Mistral AI draws an invitation to comment.",
                "https://policyblog.example/ms-mistral",
            ),
            story_item(
                "4",
                "aggregator",
                "Microsoft, Mistral AI partnership: CMA invitation to comment - Law Times",
                "CMA invitation to comment on the Microsoft Mistral AI partnership.",
                "https://aggregator.example/r/1",
            ),
        ]
        official = story_item(
            "5",
            "cma-news",
            "CMA invites comment on Microsoft's partnership with Mistral AI",
            "The CMA is inviting comments on whether Microsoft's partnership with Mistral AI is a merger.",
            "https://www.gov.uk/government/news/cma-ms-mistral",
        )

        def plan(it: Item, follow_up: str = "ignore") -> PlannedMatch:
            m = Match("itc", it.feed_id, it.item_key, Severity.HIGH, (Reason("title", "Mistral AI", 0, 1),))
            return PlannedMatch(m, "ITC", ("console",), follow_up=follow_up)

        alerted = []
        for it in press:
            result = store.save_poll(
                it.feed_id,
                T0,
                [it],
                [plan(it), replace(plan(it, "notify"), match=replace(plan(it).match, rule_id="itc-threaded"))],
                etag=None,
                last_modified=None,
                next_check_at=T0,
            )
            alerted.append(result.alerted)
        # Rule "itc": the first item alerts, the others are duplicates of the story.
        # Rule "itc-threaded" (follow_up = "notify"): one alert, then one follow-up per later item.
        assert alerted == [2, 1, 1, 1]
        result = store.save_poll(
            "cma-news", T0, [official], [plan(official)], etag=None, last_modified=None, next_check_at=T0
        )
        assert result.alerted == 1  # "confirmed by an official source"
        [trail] = store.explain("5")
        assert trail.matches[0].decision == "alerted" and "confirmed by an official source" in (
            trail.matches[0].reason or ""
        )
        alerts = store.claim_due_deliveries(T0, LEASE, 100)
        confirmed = [a for a in alerts if a.kind == "confirmed"]
        assert len(confirmed) == 1 and confirmed[0].sources == tuple(feeds)
        assert sorted(a.kind for a in alerts if a.rule_id == "itc-threaded") == [
            "first",
            "follow_up",
            "follow_up",
            "follow_up",
        ]
    finally:
        store.close()


def test_same_companies_a_month_apart_are_two_stories(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        store.sync_feeds([FeedSpec("cma-news", "https://x.example/feed")], T0)
        opened = story_item(
            "a",
            "cma-news",
            "CMA opens merger inquiry into Amazon's partnership with Anthropic",
            "The CMA has launched a phase 1 merger inquiry into Amazon's partnership with Anthropic.",
            "https://www.gov.uk/a",
        )
        cleared = story_item(
            "b",
            "cma-news",
            "CMA clears Amazon's partnership with Anthropic",
            "The CMA found Amazon's partnership with Anthropic does not qualify for a merger inquiry.",
            "https://www.gov.uk/b",
        )
        m = lambda it: PlannedMatch(Match("r", it.feed_id, it.item_key, Severity.HIGH, ()), "R", ("console",))  # noqa: E731
        first = store.save_poll("cma-news", T0, [opened], [m(opened)], etag=None, last_modified=None, next_check_at=T0)
        later = T0 + timedelta(days=30)
        second = store.save_poll(
            "cma-news", later, [cleared], [m(cleared)], etag=None, last_modified=None, next_check_at=later
        )
        assert (first.alerted, second.alerted) == (1, 1)
    finally:
        store.close()


def test_purged_items_stay_known(feeds: Store) -> None:
    it = replace(item("old", "https://example.org/old"), content_hash="h-old")
    assert save(feeds, [it], [planned(it)]).alerted == 1
    assert feeds.purge_text(T0 + timedelta(seconds=1)) == 1
    assert feeds.item_versions("cma-news", ["old"]) == {"old": ("h-old", None)}
    again = save(feeds, [it], [planned(it)])
    assert (again.new_items, again.updated_items, again.alerted) == (0, 0, 0)
    [trail] = feeds.explain("old")
    assert trail.title == "Title old" and trail.matches[0].decision == "alerted"
