"""Secrets never show (issue 13): job environments and extras are redacted by a documented pattern
set plus ``SwmApp.secret_patterns``, and site options given wrongly (a password in ``ssh_host``, a
bogus value) are named, never echoed, in health messages, API answers and the server log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from swm_jupyter.core.secrets import is_secret_name, redact, redact_text, redact_url
from tests.conftest import body

#: Secret values a job is given; none may come back in any answer.
JOB_SECRETS = {
    "GITHUB_PAT": "pat-value-0001",
    "DATABASE_URL": "postgres://app:dbpass-0002@db.example.org:5432/app",
    "MYKEY": "mykey-value-0003",
    "SESSION_COOKIE": "cookie-value-0004",
    "JWT": "jwt-value-0005",
    "ACME_LICENSE": "license-value-0006",  # secret only through SwmApp.secret_patterns
    "NOTE": "see https://joe:notepw-0007@example.org/x",  # a URL password under any name
    "TOKENISH": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMDAwOA",
}
PLAIN = {"OMP_NUM_THREADS": "4", "PATH_EXTRA": "/opt/bin"}

SITE_SECRET = "secretpw-0009"
BOGUS = "bogus-option-value-0010"
CLOUD_SECRET = "cloudpw-0011"


@pytest.fixture
def swm_sites() -> dict[str, Any]:
    """A working local site and sites whose options carry secrets in the wrong places."""
    return {
        "local": {"gate": "local", "cpus": 4},
        "leaky-ssh": {"gate": "ssh", "host": f"user:{SITE_SECRET}@127.0.0.1"},
        "leaky-slurm": {"gate": "slurm", "ssh_host": f"user:{SITE_SECRET}@127.0.0.1"},
        "bogus": {"gate": "ssh", "host": "127.0.0.1", "port": BOGUS, "command_timeout": BOGUS},
        "cloud-userinfo": {"gate": "cloud", "url": f"https://bob:{CLOUD_SECRET}@127.0.0.1:9/", "cloud_kind": "azure"},
    }


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    """The test server with one pattern of the deployment's own."""
    config = dict(jp_server_config)
    config["SwmApp"] = {**config["SwmApp"], "secret_patterns": ["ACME_*"]}
    return config


def test_the_matcher() -> None:
    for name in ("GITHUB_PAT", "DATABASE_PASSWORD", "MYKEY", "SESSION_COOKIE", "JWT", "api-key", "AWS_SECRET_KEY"):
        assert is_secret_name(name), name
    for name in ("PATH", "HOME", "OMP_NUM_THREADS", "PARTITION", "LANG"):
        assert not is_secret_name(name), name
    assert is_secret_name("acme_license", ["ACME_*"]) and not is_secret_name("acme_license")
    assert redact_url("postgres://u:pw@h:5432/db") == "postgres://u:***@h:5432/db"
    assert redact_url("user:pw@127.0.0.1") == "user:***@127.0.0.1"
    assert redact_url("mail alice@example.org at 10:30") == "mail alice@example.org at 10:30"
    assert redact_text("https://h/x?user=a&password=pw&n=1") == "https://h/x?user=a&password=***&n=1"
    assert redact({"env": {"MYKEY": "k", "X": "1"}, "on": True, "key_ok": True}) == {
        "env": {"MYKEY": "***", "X": "1"},
        "on": True,
        "key_ok": True,
    }


def assert_no_secret(text: str) -> None:
    """None of the secret values of this module is in ``text``."""
    for value in [*JOB_SECRETS.values(), SITE_SECRET, BOGUS, CLOUD_SECRET, "dbpass-0002", "notepw-0007"]:
        assert value not in text, (value, text[:2000])


async def test_job_secrets_are_hidden_in_every_answer(api: Any, jp_fetch: Any, swm_started: Any) -> None:
    env = {**JOB_SECRETS, **PLAIN}
    request = {
        "command": ["sh", "-c", 'echo "$GITHUB_PAT $ACME_LICENSE"'],
        "env": env,
        "local": {"api_token": "extra-token-0012"},
        "output_files": ["user:outpw-0013@out.txt"],  # comes back in "missing outputs: ..."
    }
    answers = []
    dry = await api("jobs", json_body=request, params={"dry_run": "1"})
    answers.append(dry)
    created = await api("jobs", json_body=request)
    answers.append(created)
    job = body(created)
    answers.append(await api("jobs", json_body=[request]))
    answers.append(await api("jobs", job["id"]))
    answers.append(await api("jobs"))
    answers.append(await jp_fetch("user", "job", job["id"], raise_error=False))
    for answer in answers:
        assert answer.code in (200, 201), (answer.code, answer.body[:300])
        assert_no_secret(answer.body.decode())
        assert "extra-token-0012" not in answer.body.decode()
    shown = body(answers[3])["spec"]["env"]
    assert all(shown[k] != v for k, v in JOB_SECRETS.items())
    assert shown["DATABASE_URL"] == "postgres://app:***@db.example.org:5432/app", "only the password is hidden"
    assert {k: shown[k] for k in PLAIN} == PLAIN, "plain variables are shown as they are"
    # Redaction is for display: the job itself gets the real values.
    for _ in range(100):
        if body(await api("jobs", job["id"]))["state"] == "finished":
            break
        await asyncio.sleep(0.1)
    log = await api("jobs", job["id"], "log")
    assert log.body == b"pat-value-0001 license-value-0006\n"
    after = [await api("jobs", job["id"]), await api("jobs"), await jp_fetch("user", "job", job["id"])]
    assert "missing outputs: user:***@out.txt" in body(after[0])["state_details"]
    for answer in after:
        assert "outpw-0013" not in answer.body.decode() and "outpw-0013" not in json.dumps(body(answer))


async def test_site_options_are_named_never_echoed(
    api: Any, jp_fetch: Any, swm_started: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [await api("sites"), await jp_fetch("user", "remote", raise_error=False)]
    for name in ("leaky-ssh", "leaky-slurm", "bogus", "cloud-userinfo"):
        answers.append(await api("sites", name))
        answers.append(await api("jobs", json_body={"command": ["true"], "site": name}))
        answers.append(await api("jobs", json_body={"command": ["true"], "site": name}, params={"dry_run": "1"}))
    for answer in answers:
        assert answer.code < 500 or answer.code == 503, (answer.code, answer.body[:300])
        assert_no_secret(answer.body.decode())
    sites = {s["name"]: s for s in body(answers[0])["sites"]}
    assert "host must be a host name" in sites["leaky-ssh"]["health_message"]
    assert "ssh_host must be a host name" in sites["leaky-slurm"]["health_message"]
    bogus = sites["bogus"]["health_message"]
    assert "port must be an int" in bogus and "command_timeout must be a float" in bogus, bogus
    assert not sites["cloud-userinfo"]["healthy"]
    refused = body(answers[3])  # a job for leaky-ssh
    assert answers[3].code == 503 and "host" in refused["message"]
    log_text = caplog.text + json.dumps([r.getMessage() for r in caplog.records])
    assert "is misconfigured" in log_text, "the log says which site is misconfigured"
    assert_no_secret(log_text)
