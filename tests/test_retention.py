"""Retention (sofeed/scheduling/retention.py): SOFEED_KEEP_DAYS, a prune once a day by the lease holder,
and what the web app shows after one."""

import logging
import socket
import time
from datetime import timedelta

import pytest

import scheduler
from sofeed.scheduling.retention import Retention, RetentionThread, keep_days
from sofeed.store import Store
from tests.helpers import save_days_ago

HOUR = 3600.0


@pytest.mark.parametrize(("text", "days"), [("", None), ("0", None), (" 90 ", 90.0), ("0.5", 0.5)])
def test_keep_days_is_off_unless_set_to_a_positive_number_of_days(text, days):
    assert keep_days({"SOFEED_KEEP_DAYS": text}) == days
    assert keep_days({}) is None


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf", "90d"])
def test_keep_days_refuses_what_is_not_a_number_of_days_and_says_what_to_set(text):
    with pytest.raises(ValueError, match="or to 0 to keep them all"):
        keep_days({"SOFEED_KEEP_DAYS": text})


def test_the_scheduler_refuses_to_start_with_a_bad_keep_days(capsys):
    with pytest.raises(SystemExit) as exit_status:
        scheduler.parse_options([], environ={"SOFEED_KEEP_DAYS": "a month"})
    assert exit_status.value.code == 2
    assert "SOFEED_KEEP_DAYS='a month' is not a number of days" in capsys.readouterr().err


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def test_only_the_lease_holder_prunes_and_then_once_a_day(store):
    save_days_ago(store, 40, range(5))
    save_days_ago(store, 2, range(5, 8))
    clock = Clock()
    retention = Retention(store, days=30, clock=clock)

    assert retention.prune_if_due(may_prune=lambda: False) is None
    assert store.count_questions() == 8

    done = retention.prune_if_due(may_prune=lambda: True)
    assert (done.deleted, store.count_questions()) == (5, 3)
    clock.now += 23 * HOUR
    assert retention.prune_if_due(may_prune=lambda: True) is None
    clock.now += 1 * HOUR
    assert retention.prune_if_due(may_prune=lambda: True).deleted == 0
    clock.now += 24 * HOUR * 30  # the two-day-old ones are 32 days old now
    assert retention.prune_if_due(may_prune=lambda: True).deleted == 3
    assert store.count_questions() == 0


def test_a_long_history_is_pruned_a_batch_at_each_look_until_none_is_left(store, caplog):
    save_days_ago(store, 40, range(5))
    save_days_ago(store, 2, range(5, 7))
    retention = Retention(store, days=30, batch=2)
    thread = RetentionThread(retention, may_prune=lambda: True, check_seconds=300)
    with caplog.at_level(logging.INFO, logger="sofeed.scheduling.retention"):
        looks = [thread.check() for _ in range(4)]
    assert [(look.deleted, look.complete) for look in looks[:3]] == [(2, False), (2, False), (1, True)]
    assert looks[3] is None  # done for the day
    assert store.count_questions() == 2
    assert caplog.records[0].getMessage().endswith("; more in 300 s")
    assert "more in" not in caplog.records[2].getMessage()


def test_a_prune_is_logged_with_what_it_deleted(store, caplog):
    save_days_ago(store, 40, range(2))
    thread = RetentionThread(Retention(store, days=30), may_prune=lambda: True, check_seconds=HOUR)
    with caplog.at_level(logging.INFO, logger="sofeed.scheduling.retention"):
        assert thread.check().deleted == 2
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("retention: deleted 2 questions first fetched before ")


def unused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_prune_that_cannot_reach_the_database_is_one_warning_and_tried_again_later(caplog):
    unreachable = Store.connect(f"mongodb://127.0.0.1:{unused_port()}", "sofeed", timeout_ms=200)
    thread = RetentionThread(Retention(unreachable, days=30), may_prune=lambda: True, check_seconds=HOUR)
    try:
        assert thread.check() is None
    finally:
        unreachable.close()
    [record] = [record for record in caplog.records if record.name == "sofeed.scheduling.retention"]
    assert record.levelno == logging.WARNING
    assert "retention: prune failed: " in record.getMessage()
    assert "trying again later" in record.getMessage()


# What the web app shows after a prune: the `app` fixture re-reads the store on every request.


def test_after_a_prune_the_web_app_shows_and_counts_only_the_kept_questions(store, client):
    pruned = save_days_ago(store, 40, range(5))
    kept = save_days_ago(store, 2, range(5, 8))
    Retention(store, days=30).prune()

    assert [question["id"] for question in client.get("/update?timestamp=0").get_json()] == kept[::-1]
    assert client.get("/status").get_json()["questions"] == 3
    page = client.get("/").get_data(as_text=True)
    assert all(f'data-id="{key}"' in page for key in kept)
    assert not any(key in page for key in pruned)


def test_a_web_app_that_showed_questions_before_a_prune_stops_showing_the_pruned_ones(store, client):
    save_days_ago(store, 40, range(5))
    kept = save_days_ago(store, 2, range(5, 8))
    assert len(client.get("/update?timestamp=0").get_json()) == 8
    Retention(store, days=30).prune()
    assert [question["id"] for question in client.get("/update?timestamp=0").get_json()] == kept[::-1]


def test_a_prune_cutoff_is_the_retention_period_before_now(store):
    clock = Clock()
    done = Retention(store, days=7, clock=clock).prune()
    assert abs(done.before.timestamp() - (clock.now - timedelta(days=7).total_seconds())) < 0.001
