"""The schedule model without a loop: validation, due times (interval, cron in a time zone), catch-up plans."""

from __future__ import annotations

import copy
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from swm_jupyter.core.errors import ValidationError
from swm_jupyter.core.schedules import apply_update, parse_every, plan_due, schedule_from_request
from swm_jupyter.core.secrets import redact

JOB = {"command": ["true"]}


def test_parse_every_reads_numbers_and_units() -> None:
    assert parse_every(30) == 30.0
    assert parse_every("10m") == 600.0
    assert parse_every("1h30m") == 5400.0
    assert parse_every("2s") == 2.0
    assert parse_every("1d") == 86400.0
    for bad in ("0s", "soon", "", True, -5, "10x"):
        with pytest.raises(ValueError):
            parse_every(bad)


def test_interval_due_times_are_anchored_at_creation_and_exclusive_of_after() -> None:
    schedule = schedule_from_request({"job": JOB, "every": "2s"}, owner="ana", now=1000.0)
    assert schedule.due_times(1000.0, 1007.0) == [1002.0, 1004.0, 1006.0]
    assert schedule.due_times(1004.0, 1004.5) == []
    assert schedule.due_times(1003.9, 1004.0) == [1004.0]
    assert schedule.next_due(1006.0) == 1008.0
    # a start in the future: the first due time is the start itself
    later = schedule_from_request({"job": JOB, "every": 10, "start": 2000, "end": 2025}, owner="ana", now=1000.0)
    assert later.due_times(1000.0, 3000.0) == [2000.0, 2010.0, 2020.0]
    assert later.next_due(2020.0) is None
    # start and end as ISO times (naive: UTC) or epoch seconds as text, as the CLI sends them
    iso = schedule_from_request({"job": JOB, "every": 10, "start": "1970-01-01T00:33:20", "end": "2025"}, owner="a")
    assert (iso.start, iso.end) == (2000.0, 2025.0)
    # only the newest ones when there are more than the limit
    assert schedule.due_times(1000.0, 1100.0, limit=3) == [1096.0, 1098.0, 1100.0]


def test_cron_follows_its_time_zone_across_daylight_saving() -> None:
    schedule = schedule_from_request(
        {"job": JOB, "cron": "0 9 * * *", "timezone": "Europe/Berlin"}, owner="ana", now=0.0
    )
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-03-28 (CET, UTC+1) and 2026-03-30 (CEST, UTC+2): 9:00 local both days
    after = datetime(2026, 3, 28, 0, 0, tzinfo=berlin).timestamp()
    until = datetime(2026, 3, 30, 12, 0, tzinfo=berlin).timestamp()
    due = schedule.due_times(after, until)
    local = [datetime.fromtimestamp(t, berlin) for t in due]
    assert [(d.day, d.hour, d.minute) for d in local] == [(28, 9, 0), (29, 9, 0), (30, 9, 0)]
    utc_hours = [datetime.fromtimestamp(t, ZoneInfo("UTC")).hour for t in due]
    assert utc_hours == [8, 7, 7]


def test_bad_requests_name_every_field() -> None:
    with pytest.raises(ValidationError) as info:
        schedule_from_request(
            {
                "cron": "61 * * * *",
                "timezone": "Mars/Olympus",
                "max_concurrent": 0,
                "catch_up": "some",
                "keep_last": -1,
                "webhook": {"url": "ftp://x"},
                "email": ["not-an-address"],
                "colour": "red",
            },
            owner="ana",
        )
    fields = {e["field"] for e in info.value.errors}
    assert fields >= {
        "job",
        "cron",
        "timezone",
        "max_concurrent",
        "catch_up",
        "keep_last",
        "webhook.url",
        "email",
        "colour",
    }
    with pytest.raises(ValidationError, match="either cron or every"):
        schedule_from_request({"job": JOB, "cron": "* * * * *", "every": "1m"}, owner="ana")
    with pytest.raises(ValidationError, match="cron"):
        schedule_from_request({"job": JOB}, owner="ana")
    with pytest.raises(ValidationError, match="end"):
        schedule_from_request({"job": JOB, "every": 5, "start": 100, "end": 50}, owner="ana")


def test_public_form_hides_webhook_secrets_and_update_keeps_them() -> None:
    schedule = schedule_from_request(
        {
            "job": JOB,
            "every": "1m",
            "webhook": {
                "url": "https://hooks.example.org/x?key=s3cret-in-url",
                "token": "tok-123",
                "headers": {"X-Api": "h-456"},
            },
        },
        owner="ana",
    )
    shown = str(schedule.public())
    assert "tok-123" not in shown and "h-456" not in shown and "s3cret-in-url" not in shown
    # the public form sent back unchanged keeps the stored secrets
    updated = apply_update(schedule, {"webhook": schedule.public()["webhook"]})
    assert updated.webhook == schedule.webhook
    assert apply_update(schedule, {"webhook": {"url": "https://hooks.example.org/y"}}).webhook == {
        "url": "https://hooks.example.org/y"
    }
    assert apply_update(schedule, {"webhook": None}).webhook is None


def test_catch_up_plans() -> None:
    due = [10.0, 12.0, 14.0, 16.0, 18.0]
    started = 15.0  # 10, 12, 14 passed while no server ran; 16, 18 came while one ran
    assert plan_due(due, "none", started).run == [16.0, 18.0]
    assert plan_due(due, "none", started).missed == [10.0, 12.0, 14.0]
    assert plan_due(due, "last", started).run == [14.0, 16.0, 18.0]
    assert plan_due(due, "last", started).missed == [10.0, 12.0]
    assert plan_due(due, "all", started).run == due
    assert plan_due(due, "all", started).missed == []


def test_a_job_sent_back_as_shown_keeps_its_secrets() -> None:
    job = {
        "command": ["curl", "https://ana:pa55word@data.example.org/x"],
        "env": {"API_TOKEN": "tok-789", "REGION": "north"},
    }
    schedule = schedule_from_request({"job": job, "every": "1h"}, owner="ana")
    shown = redact(schedule.job)
    assert "tok-789" not in str(shown) and "pa55word" not in str(shown)
    updated = apply_update(schedule, {"job": shown})
    assert updated.job == job, "the stored secrets stay"
    changed = copy.deepcopy(shown)
    changed["env"]["REGION"] = "south"
    changed["env"]["API_TOKEN"] = "new-token"
    assert apply_update(schedule, {"job": changed}).job["env"] == {"API_TOKEN": "new-token", "REGION": "south"}
    longer = copy.deepcopy(shown)
    longer["command"].append("-v")
    assert apply_update(schedule, {"job": longer}).job["command"] == [*job["command"], "-v"]


def test_webhook_headers_that_would_break_the_request_are_refused() -> None:
    for headers in ({"X-A": "a\rb"}, {"X-A": "a\x00b"}, {"X-A": "\u2028"}, {"Content-Length": "5"}, {"host": "x"}):
        with pytest.raises(ValidationError) as caught:
            schedule_from_request(
                {"job": JOB, "every": "1h", "webhook": {"url": "https://h.example.org/x", "headers": headers}},
                owner="ana",
            )
        assert [e["field"] for e in caught.value.errors] == ["webhook.headers"], headers
    made = schedule_from_request(
        {"job": JOB, "every": "1h", "webhook": {"url": "https://h.example.org/x", "headers": {"X-A": "a\tb c"}}},
        owner="ana",
    )
    assert made.webhook is not None and made.webhook["headers"] == {"X-A": "a\tb c"}


def test_a_stored_webhook_secret_never_goes_to_a_new_address() -> None:
    hook = {"url": "https://hooks.example.org/x", "token": "tok-123", "headers": {"X-Api": "h-456"}}
    schedule = schedule_from_request({"job": JOB, "every": "1h", "webhook": hook}, owner="ana")
    shown = schedule.public()["webhook"]
    for moved in ({**shown, "url": "https://elsewhere.example.net/x"}, {**shown, "url": "http://hooks.example.org/x"}):
        with pytest.raises(ValidationError) as caught:
            apply_update(schedule, {"webhook": moved})
        assert caught.value.errors[0]["field"] == "webhook.token", caught.value.errors
    with pytest.raises(ValidationError, match="address changed"):
        apply_update(schedule, {"webhook": {"url": "https://elsewhere.example.net/", "headers": {"X-Api": "***"}}})
    # a new path at the same address keeps them; a new address with the secrets given again takes them
    same = apply_update(schedule, {"webhook": {**shown, "url": "https://hooks.example.org/y"}})
    assert same.webhook == {**hook, "url": "https://hooks.example.org/y"}
    again = {"url": "https://elsewhere.example.net/x", "token": "tok-new", "headers": {"X-Api": "h-new"}}
    assert apply_update(schedule, {"webhook": again}).webhook == again


def test_a_webhook_url_without_a_readable_host_or_port_is_refused() -> None:
    for url in ("http://[::1", "https://h.example.org:99999/x", "http://:80/", "https://user@/x"):
        with pytest.raises(ValidationError) as caught:
            schedule_from_request({"job": JOB, "every": "1h", "webhook": url}, owner="ana")
        assert caught.value.errors[0]["field"] == "webhook.url", url
    made = schedule_from_request({"job": JOB, "every": "1h", "webhook": "https://[2001:db8::1]:8443/x"}, owner="ana")
    assert made.webhook == {"url": "https://[2001:db8::1]:8443/x"}
