"""Local mode honours wake exclusions and maintenance: a bot and a health check do not start a
stopped workload and get their configured answers; once it runs, the bot is forwarded and still
does not keep it up; maintenance answers everything and starts nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.component.test_local_mode import Start, config
from tests.component.test_local_mode import local as local  # the fixture
from tests.component.test_local_warm import validate
from wakeway.local.plan import Phase
from wakeway.model.exclusions import EXCLUDED_BODY, MAINTENANCE_BODY

pytestmark = pytest.mark.component

BOT = {"User-Agent": "Mozilla/5.0 (compatible; bingbot/2.0)"}
EXCLUSIONS = """\
  wakeExclusions:
    - userAgent: "(?i)(bot|crawler|spider)"
    - paths: [{type: Exact, value: /healthz}]
      response: {statusCode: 200, body: "ok\\n"}
      responseMode: Always
"""


async def test_bots_and_health_checks_do_not_start_or_keep_up_a_workload(local: Start) -> None:
    h = await local(config(scaledown=1, extra_spec=EXCLUSIONS))
    slot = h.runner.slots["default/app"]
    assert await h.get("app.localhost", "/", **BOT) == (503, EXCLUDED_BODY)
    assert await h.get("app.localhost", "/healthz") == (200, "ok\n")
    assert (slot.phase, slot.starts) == (Phase.STOPPED, 0)

    status, _ = await h.get("app.localhost", "/page")  # a user: starts it
    assert status == 200
    assert slot.starts == 1
    status, forwarded = await h.get("app.localhost", "/from-bot", **BOT)
    assert status == 200
    assert '"pid": ' in forwarded  # the workload answered
    assert await h.get("app.localhost", "/healthz") == (200, "ok\n")

    # Bots every 50 ms do not keep it up: it stops a quiet period after the user's request.
    began = time.monotonic()
    while slot.phase is not Phase.STOPPED:
        assert time.monotonic() - began < 15, "bots kept the workload up"
        status, _ = await h.get("app.localhost", "/", **BOT)
        assert status in (200, 503)
        await asyncio.sleep(0.05)
    assert await h.get("app.localhost", "/", **BOT) == (503, EXCLUDED_BODY)
    assert slot.starts == 1


async def test_maintenance_answers_everything_and_starts_nothing(local: Start) -> None:
    h = await local(config(extra_spec=EXCLUSIONS + "  maintenance: {}\n"))
    slot = h.runner.slots["default/app"]
    for path, headers in (("/", {}), ("/healthz", {}), ("/x", BOT)):
        assert await h.get("app.localhost", path, **headers) == (503, MAINTENANCE_BODY)
    assert (slot.phase, slot.starts) == (Phase.STOPPED, 0)


def test_validate_names_the_file_and_field_of_a_bad_user_agent(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config(extra_spec='  wakeExclusions:\n    - userAgent: "bot(?=s)"\n'))
    done = validate(path)
    assert done.returncode == 1
    where = f"{path} document 2 (HTTPScaledObject app): "
    assert f"{where}spec.wakeExclusions[0].userAgent: 'bot(?=s)' is not an RE2" in done.stderr
