"""Referrals between two organisations' nodes, through the hub, on real servers: the closed
loop, the other endings, consent, idempotency, authorisation per object, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.conftest import client
from tests.waiting import eventually

Creds = dict[str, Any]
PERSON = {
    "given_name": "Awa",
    "need_summary": "Fièvre depuis trois jours, besoin d'une consultation.",
    "languages": "wolof, français",
}


def referral(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "to_org": "amal",
        "category": "primary_health",
        "urgency": "priority",
        "legal_basis": "consent",
        "consent": {},
        "payload": PERSON,
    }
    return body | overrides


async def status_at(node: httpx.AsyncClient, referral_id: str) -> str | None:
    response = await node.get(f"/api/v1/referrals/{referral_id}")
    return str(response.json()["status"]) if response.status_code == 200 else None


async def reaches(
    node: httpx.AsyncClient, referral_id: str, status: str, what: str, *, within: float = 30
) -> None:
    async def there() -> bool:
        return await status_at(node, referral_id) == status

    await eventually(there, within=within, what=what)


async def send(creds: Creds, **overrides: Any) -> str:
    async with client(creds, "sanad", "caseworker") as sanad:
        response = await sanad.post("/api/v1/referrals", json=referral(**overrides))
        assert response.status_code == 201, response.text
        return str(response.json()["referral_id"])


async def test_the_closed_loop_from_sending_to_the_outcome(running_network: Creds) -> None:
    referral_id = await send(running_network)
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
        await reaches(sanad, referral_id, "received", "sanad learns it was received")

        inbox = (await amal.get("/api/v1/referrals", params={"box": "inbox"})).json()["items"]
        assert referral_id in [r["referral_id"] for r in inbox]
        detail = (await amal.get(f"/api/v1/referrals/{referral_id}")).json()
        assert detail["allowed_actions"] == ["accept", "decline"]
        assert "Awa" not in str(detail)  # metadata only until an explicit read

        opened = await amal.get(f"/api/v1/referrals/{referral_id}/payload")
        assert opened.status_code == 200, opened.text
        assert opened.json()["payload"]["given_name"] == "Awa"

        for action, body in (
            ("accept", None),
            ("start", None),
            ("complete", {"reason": "service_provided", "note": "Vue par le Dr B."}),
        ):
            response = await amal.post(f"/api/v1/referrals/{referral_id}/{action}", json=body)
            assert response.status_code == 200, response.text
        await reaches(sanad, referral_id, "completed", "sanad sees the outcome")

        history = (await sanad.get(f"/api/v1/referrals/{referral_id}")).json()["history"]
        assert [h["change"] for h in history] == [
            "sent",
            "received",
            "accepted",
            "in_progress",
            "completed",
        ]
        assert history[-1]["reason"] == "service_provided"
        # The sender reads the note the recipient sealed with the referral's data key.
        notes = (await sanad.get(f"/api/v1/referrals/{referral_id}/payload")).json()["notes"]
        assert [n["note"] for n in notes] == ["Vue par le Dr B."]


async def test_decline_withdraw_and_close_unresolved_reach_the_other_side(
    running_network: Creds,
) -> None:
    declined, withdrawn, closed = [await send(running_network) for _ in range(3)]
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        for referral_id in (declined, withdrawn, closed):
            await reaches(amal, referral_id, "received", "the envelopes land")
        response = await amal.post(f"/api/v1/referrals/{declined}/decline", json={})
        assert response.status_code == 422 and response.json()["field"] == "reason"
        response = await amal.post(
            f"/api/v1/referrals/{declined}/decline", json={"reason": "no_capacity"}
        )
        assert response.status_code == 200, response.text

        response = await sanad.post(
            f"/api/v1/referrals/{withdrawn}/withdraw", json={"reason": "no_longer_needed"}
        )
        assert response.status_code == 200, response.text

        await amal.post(f"/api/v1/referrals/{closed}/accept")
        response = await amal.post(
            f"/api/v1/referrals/{closed}/close", json={"reason": "person_unreachable"}
        )
        assert response.status_code == 200, response.text

        await reaches(sanad, declined, "declined", "sanad learns of the decline")
        await reaches(amal, withdrawn, "withdrawn", "amal learns of the withdrawal")
        await reaches(sanad, closed, "closed_unresolved", "sanad learns it was closed")

        # A step the state does not allow: 409, naming what is allowed now.
        response = await amal.post(f"/api/v1/referrals/{declined}/accept")
        assert response.status_code == 409
        assert response.json()["allowed"] == []
        response = await sanad.post(f"/api/v1/referrals/{closed}/accept")
        assert response.status_code == 403  # the sender does not accept its own referral


async def test_revoking_consent_destroys_the_recipients_copy_of_the_key(
    running_network: Creds,
) -> None:
    referral_id = await send(running_network)
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await reaches(amal, referral_id, "received", "the envelope lands")
        assert (await amal.get(f"/api/v1/referrals/{referral_id}/payload")).status_code == 200

        response = await sanad.post(f"/api/v1/referrals/{referral_id}/revoke-consent")
        assert response.status_code == 204, response.text

        async def confirmed() -> bool:
            found = (await sanad.get(f"/api/v1/referrals/{referral_id}")).json()
            return bool(found["consent_state"] == "key_destroyed")

        await eventually(confirmed, within=30, what="amal confirms it destroyed its key")
        at_amal = (await amal.get(f"/api/v1/referrals/{referral_id}")).json()
        assert at_amal["consent_state"] == "revoked" and at_amal["payload_erased"] is True
        unreadable = await amal.get(f"/api/v1/referrals/{referral_id}/payload")
        assert unreadable.status_code == 409
        assert "erased" in unreadable.json()["detail"]
    # Both reads are in amal's audit log: the one that showed the data, and the refused one.
    async with client(running_network, "amal", "admin") as auditor:

        async def reads_logged() -> bool:
            page = await auditor.get(
                "/api/v1/audit/records",
                params={"object": f"referral:{referral_id}", "action": "referral.payload_read"},
            )
            outcomes = [r["outcome"] for r in page.json()["items"]]
            return outcomes == ["ok", "refused"]

        await eventually(reads_logged, within=30, what="both reads in amal's audit log")


async def test_a_retried_create_with_the_same_key_makes_one_referral(
    running_network: Creds,
) -> None:
    key = str(uuid.uuid4())
    async with client(running_network, "sanad", "caseworker") as sanad:
        first = await sanad.post(
            "/api/v1/referrals", json=referral(), headers={"Idempotency-Key": key}
        )
        again = await sanad.post(
            "/api/v1/referrals", json=referral(), headers={"Idempotency-Key": key}
        )
        assert first.status_code == again.status_code == 201
        assert first.json()["referral_id"] == again.json()["referral_id"]
        other = await sanad.post(
            "/api/v1/referrals",
            json=referral(urgency="emergency"),
            headers={"Idempotency-Key": key},
        )
        assert other.status_code == 409
        assert other.json()["field"] == "idempotency_key"


async def test_an_organisation_that_is_not_a_party_cannot_see_a_referral(
    running_network: Creds,
) -> None:
    referral_id = await send(running_network)
    async with client(running_network, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands")
    async with client(running_network, "hub", "coordinator") as hub:
        assert (await hub.get(f"/api/v1/referrals/{referral_id}")).status_code == 403
    async with client(running_network, "hub", "auditor") as hub:
        response = await hub.get(f"/api/v1/referrals/{referral_id}")
        assert response.status_code == 404
        assert (await hub.get(f"/api/v1/referrals/{referral_id}/payload")).status_code == 403


async def test_bad_referrals_get_a_specific_answer(running_network: Creds) -> None:
    async with client(running_network, "sanad", "caseworker") as sanad:
        cases = [
            (referral(to_org="nowhere"), 422, "to_org"),
            (referral(to_org="sanad"), 422, "to_org"),
            (  # amal offers no legal aid
                referral(category="legal_aid", payload={**PERSON, "family_name": "D."}),
                422,
                "to_org",
            ),
            (referral(legal_basis=None), 422, "legal_basis"),
            (referral(consent=None), 422, "consent"),
            (
                referral(payload={**PERSON, "religion": "x"}),
                422,
                "payload.religion",
            ),
            (referral(payload={"languages": "wolof"}), 422, "payload.given_name"),
        ]
        for body, code, field in cases:
            response = await sanad.post("/api/v1/referrals", json=body)
            assert response.status_code == code, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["field"] == field, response.json()
        listed = (await sanad.get("/api/v1/referrals", params={"box": "outbox"})).json()
        assert all(r["to_org"] in ("amal",) for r in listed["items"])  # nothing half-made


async def test_the_sender_is_shown_ranked_organisations_with_their_reasons(
    running_network: Creds,
) -> None:
    async with client(running_network, "sanad", "caseworker") as sanad:
        response = await sanad.post(
            "/api/v1/referrals/suggestions",
            json={"category": "primary_health", "city": "oujda", "languages": ["fra"]},
        )
        assert response.status_code == 200, response.text
        first = response.json()[0]
        assert first["org_id"] == "amal"
        assert {r["code"] for r in first["reasons"]} >= {"same_city", "language_match"}
        wrong = await sanad.post("/api/v1/referrals/suggestions", json={"category": "astrology"})
        assert wrong.status_code == 422 and wrong.json()["field"] == "category"
        forms = (await sanad.get("/api/v1/referrals/categories")).json()
        health = next(f for f in forms if f["category"] == "primary_health")
        assert {f["name"] for f in health["fields"] if f["required"]} == {
            "given_name",
            "need_summary",
        }


async def test_a_suspended_organisation_receives_no_referral(running_network: Creds) -> None:
    async with (
        client(running_network, "hub", "coordinator") as hub,
        client(running_network, "sanad", "caseworker") as sanad,
    ):

        async def seen_by_sanad(expected: str) -> bool:
            found = (await sanad.get("/api/v1/directory/organisations/amal")).json()
            return bool(found["status"] == expected)

        membership = "/api/v1/directory/organisations/amal/membership"
        suspend = {"action": "suspend", "reason": "Suspended for the test"}
        response = await hub.post(membership, json=suspend)
        assert response.status_code == 200, response.text
        try:
            await eventually(lambda: seen_by_sanad("suspended"), within=20, what="replicated")
            refused = await sanad.post("/api/v1/referrals", json=referral())
            assert refused.status_code == 422
            assert refused.json()["field"] == "to_org"
            assert "suspended" in refused.json()["detail"]
        finally:
            await hub.post(membership, json={"action": "reinstate"})
        await eventually(lambda: seen_by_sanad("active"), within=20, what="reinstated")
        accepted = await sanad.post("/api/v1/referrals", json=referral())
        assert accepted.status_code == 201, accepted.text
