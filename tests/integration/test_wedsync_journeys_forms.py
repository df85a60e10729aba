"""Journeys and forms end to end (SPEC.md stories 2 and 4): the couple acts over REST, the
supplier's sockets see progress live; locked or repeated steps and incomplete submissions are
refused; a rival supplier cannot join the channels."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import RunningServer
from tests.support.wedsync_api import C, headers, http, joined, next_event, on_each, refused
from wedsync_realtime.wedding.demo import demo

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

J = demo.walkthrough
F = demo.shot_list_form


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


async def test_completing_the_walkthrough_opens_contract_review_for_mike(
    server: RunningServer,
) -> None:
    mike = await joined(
        server,
        "mike",
        f"journey:progress:{J}",
        f"supplier:{demo.venue_owner}:journeys",
        "user:mike",
    )
    async with http(server) as api:
        done = await api.post(
            f"/api/wedsync/journeys/{J}/steps/venue-walkthrough/complete",
            headers=headers(server, "emma"),
        )
        assert done.status_code == 200, done.text
        assert done.json()["progress_percentage"] == 33
        assert done.json()["next_steps"] == ["contract-review"]

        channels = [f"journey:progress:{J}", f"supplier:{demo.venue_owner}:journeys"]
        seen = await on_each(mike, "journey_step_completed", channels)
        payload = seen[channels[0]]["payload"]
        assert payload["journey_id"] == J and payload["step_id"] == "venue-walkthrough"
        assert (payload["supplier_id"], payload["couple_id"]) == (demo.venue_owner, C)
        assert payload["progress_percentage"] == 33
        assert [s["name"] for s in payload["next_steps"]] == ["Contract Review"]
        assert payload["completed_by"] == "emma"
        notice = await next_event(mike, "notification_new", "user:mike")
        assert notice["payload"]["title"] == "✅ Venue Walkthrough — Completed"

        again = await api.post(
            f"/api/wedsync/journeys/{J}/steps/venue-walkthrough/complete",
            headers=headers(server, "emma"),
        )
        assert again.status_code == 409
        locked = await api.post(
            f"/api/wedsync/journeys/{J}/steps/final-details/complete",
            headers=headers(server, "emma"),
        )
        assert locked.status_code == 409 and "Contract Review" in locked.json()["message"]
        by_rival = await api.post(
            f"/api/wedsync/journeys/{J}/steps/contract-review/complete",
            headers=headers(server, "rita"),
        )
        assert by_rival.status_code == 403
        journey = await api.get(f"/api/wedsync/journeys/{J}", headers=headers(server, "mike"))
        assert [s["status"] for s in journey.json()["steps"]] == [
            "completed",
            "available",
            "locked",
        ]


async def test_email_opened_and_task_due_are_operator_reports(server: RunningServer) -> None:
    mike = await joined(server, "mike", f"journey:progress:{J}")
    url = f"/api/wedsync/journeys/{J}/steps/venue-walkthrough"
    async with http(server) as api:
        refused_user = await api.post(f"{url}/email-opened", headers=headers(server, "emma"))
        assert refused_user.status_code == 403
        opened = await api.post(f"{url}/email-opened", headers=headers(server, "admin"))
        assert opened.status_code == 200
        due = await api.post(f"{url}/task-due", headers=headers(server, "ops", role="service_role"))
        assert due.status_code == 200
    assert (await next_event(mike, "journey_email_opened"))["payload"][
        "step_id"
    ] == "venue-walkthrough"
    assert (await next_event(mike, "journey_task_due"))["payload"]["progress_percentage"] == 0


async def test_sarah_watches_the_shot_list_fill_up_and_get_submitted(
    server: RunningServer,
) -> None:
    sarah = await joined(
        server, "sarah", f"form:responses:{F}", f"supplier:{demo.photographer}:forms", "user:sarah"
    )
    rita = await server.connect(server.token("rita"))
    assert "Unauthorized" in await refused(rita, f"form:responses:{F}")
    url = f"/api/wedsync/forms/{F}/response"
    emma = headers(server, "emma")
    async with http(server) as api:
        answer = await api.put(
            f"{url}/fields/family_groups", json={"value": "Both sides"}, headers=emma
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["completion_percentage"] == 25

        event = await next_event(sarah, "form_field_updated", f"form:responses:{F}")
        payload = event["payload"]
        assert (payload["form_id"], payload["couple_id"], payload["field_id"]) == (
            F,
            C,
            "family_groups",
        )
        assert payload["user_name"] == "Emma" and payload["completion_percentage"] == 25
        assert "data" not in payload  # answers are read over REST, not broadcast

        early = await api.post(f"{url}/submit", headers=emma)
        assert early.status_code == 422 and "Must-have shots" in early.json()["message"]
        unknown = await api.put(f"{url}/fields/shoe_size", json={"value": 1}, headers=emma)
        assert unknown.status_code == 422 and unknown.json()["field"] == "field_id"

        await api.put(f"{url}/fields/must_have_shots", json={"value": "First look"}, headers=emma)
        submitted = await api.post(f"{url}/submit", headers=emma)
        assert submitted.status_code == 200 and submitted.json()["status"] == "submitted"

        done = await next_event(sarah, "form_submitted", f"supplier:{demo.photographer}:forms")
        assert done["payload"]["completion_percentage"] == 50
        assert done["payload"]["status"] == "submitted"
        notice = await next_event(sarah, "notification_new", "user:sarah")
        assert notice["payload"]["title"] == "New form submission: Shot List Preferences"

        read = await api.get(
            f"/api/wedsync/forms/{F}/responses/{C}", headers=headers(server, "sarah")
        )
        assert read.json()["data"] == {
            "family_groups": "Both sides",
            "must_have_shots": "First look",
        }
        snooping = await api.get(
            f"/api/wedsync/forms/{F}/responses/{C}", headers=headers(server, "rita")
        )
        assert snooping.status_code == 403
        by_supplier = await api.put(
            f"{url}/fields/avoid", json={"value": "x"}, headers=headers(server, "sarah")
        )
        assert by_supplier.status_code == 403
