"""Notifications on real servers: a referral's events published on the node's NATS reach the
right people by e-mail (a real SMTP server), webhook (a real HTTP receiver), the live feed
(server-sent events) and the daily digest, once each, with no personal data leaving."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from standardwebhooks import WebhookVerificationError

from deploy.ports import free_ports
from services.notifications import handlers
from services.notifications.webhook_channel import sign
from services.notifications.webhook_document import NotificationEvent
from services.notifications.webhook_secrets import new_secret
from shared.bus import Delivery
from shared.contracts.referrals import Box, ReferralChanged, ReferralEscalated, Status, Urgency
from shared.events import make_event
from shared.federation import LOCAL
from tests.integration.notifications_node import (
    NodeFactory,
    NotifyingNode,
    changed,
    deadline,
    make_node,
    publish_net,
    referral,
)
from tests.waiting import eventually

__all__ = ["make_node"]  # the fixture, used by name
README = Path(__file__).parents[2] / "README.md"
CANARY = "CANARY-Fatou-Diallo-1990-03-14"
STAFF = [
    ("focal", "focal_point", "fr"),
    ("nour", "focal_point", "ar"),
    ("caseworker", "caseworker", "fr"),
    ("admin", "admin", "fr"),
]


def body_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content


def everything_in(message: EmailMessage) -> str:
    return str(message["Subject"]) + body_of(message, "plain") + body_of(message, "html")


async def set_contact(node: NotifyingNode, username: str, **choices: Any) -> None:
    async with node.client(username) as client:
        response = await client.put("/preferences", json=choices)
        assert response.status_code == 200, response.text


async def mails_to(node: NotifyingNode, address: str, count: int) -> list[EmailMessage]:
    async def arrived() -> bool:
        return len(node.mailbox.to(address)) >= count

    await eventually(arrived, within=15, what=f"{count} mail(s) to {address}")
    return node.mailbox.to(address)


async def consumed(node: NotifyingNode, count: int) -> None:
    """Until the node's consumer has taken and acknowledged ``count`` events."""

    async def done() -> bool:
        info = await node.bus.js.consumer_info(LOCAL, handlers.CONSUMER)
        return bool(info.delivered.stream_seq >= count and info.num_ack_pending == 0)

    await eventually(done, within=15, what=f"{count} events consumed")


class TestMail:
    async def test_a_received_referral_mails_each_focal_point_in_their_language(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        await set_contact(node, "focal", email="focal@sanad.example")
        await set_contact(node, "nour", email="nour@sanad.example", language="ar")
        await set_contact(node, "caseworker", email="cw@sanad.example")
        view = referral(urgency=Urgency.EMERGENCY)
        await node.publish(changed(view, "received", payload=CANARY, note=CANARY))

        (french,) = await mails_to(node, "focal@sanad.example", 1)
        (arabic,) = await mails_to(node, "nour@sanad.example", 1)
        assert french["Subject"] == (
            "Relais: [Urgence] Une nouvelle orientation attend votre organisation"
        )
        assert "إحالة جديدة في انتظار منظمتكم" in arabic["Subject"]
        assert french["Content-Language"] == "fr" and arabic["Content-Language"] == "ar"
        assert '<html lang="ar" dir="rtl">' in body_of(arabic, "html")
        assert '<html lang="fr" dir="ltr">' in body_of(french, "html")
        link = f"https://sanad.relais.example/referrals/{view.referral_id}"
        for message in (french, arabic):
            text = everything_in(message)
            assert link in body_of(message, "plain") and link in body_of(message, "html")
            assert "legal_aid" in text
            assert CANARY not in text
            assert "amal" not in text  # not even the sending organisation leaves the node
        assert "Catégorie: legal_aid" in body_of(french, "plain")
        assert "درجة الاستعجال: طارئة" in body_of(arabic, "plain")
        assert node.mailbox.to("cw@sanad.example") == []  # a case worker is not a focal point

    async def test_the_referring_case_worker_learns_the_outcome(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        await set_contact(node, "caseworker", email="cw@sanad.example")
        await set_contact(node, "focal", email="focal@sanad.example")
        view = referral(box=Box.OUTBOX, status=Status.DECLINED, created_by="caseworker")
        await node.publish(changed(view, "declined"))

        (mail,) = await mails_to(node, "cw@sanad.example", 1)
        assert mail["Subject"] == "Relais: Suivi de votre orientation : Déclinée"
        await consumed(node, 1)
        assert node.mailbox.to("focal@sanad.example") == []


class TestOncePerEvent:
    async def test_a_redelivered_event_notifies_each_person_once(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        await set_contact(node, "focal", email="focal@sanad.example")
        event = changed(referral(), "received")
        await node.publish(event)
        await node.publish(event, msg_id=f"replayed-{event.id}")  # past the broker's dedup
        await consumed(node, 2)
        await handlers.on_referral_changed(  # and a third time, straight to the handler
            node.notifier, event, ReferralChanged.model_validate(event.data)
        )

        await mails_to(node, "focal@sanad.example", 1)
        async with node.client("focal") as client:
            feed = (await client.get("/feed")).json()
        assert feed["unread"] == 1 and len(feed["items"]) == 1
        await asyncio.sleep(1)  # give a duplicate mail every chance to show up
        assert len(node.mailbox.to("focal@sanad.example")) == 1

    async def test_a_fetch_of_events_handled_together_notifies_each_once(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        await set_contact(node, "focal", email="focal@sanad.example")
        events = [changed(referral(), "received") for _ in range(3)]
        await node.publish(events[0])
        await consumed(node, 1)  # the first one alone, by the consumer
        delivery = Delivery("relais.local.referrals.changed", LOCAL, 1, 1)
        # then all three together, the first again, as a fetch of the consumer comes in
        await handlers.on_referral_events(
            node.notifier,
            [(e, ReferralChanged.model_validate(e.data), delivery) for e in events],
        )

        await mails_to(node, "focal@sanad.example", 3)
        async with node.client("focal") as client:
            feed = (await client.get("/feed")).json()
        assert feed["unread"] == 3
        assert sorted(item["facts"]["referral_id"] for item in feed["items"]) == sorted(
            e.data["referral"]["referral_id"] for e in events
        )
        await asyncio.sleep(1)  # give a duplicate mail every chance to show up
        assert len(node.mailbox.to("focal@sanad.example")) == 3


class TestLiveFeed:
    async def test_a_server_sent_events_client_gets_the_notification_live(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        view = referral()
        events: list[tuple[str, dict[str, Any]]] = []
        opened = asyncio.Event()

        async def listen() -> None:
            async with node.client("nour") as client, client.stream("GET", "/stream") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                name = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line.removeprefix("data: "))))
                        opened.set()
                        if name == "notification":
                            return

        listener = asyncio.create_task(listen())
        await asyncio.wait_for(opened.wait(), 10)
        assert events == [("unread", {"unread": 0})]
        await node.publish(changed(view, "received"))
        await asyncio.wait_for(listener, 15)

        _, item = events[-1]
        assert item["title"] == "إحالة جديدة في انتظار منظمتكم"
        assert item["facts"]["referral_id"] == view.referral_id
        assert item["read"] is False
        async with node.client("nour") as client:
            assert (await client.post("/feed/read", json={})).json() == {"unread": 0}


class TestDigest:
    async def test_the_digest_groups_a_days_notifications_in_one_mail(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        await set_contact(node, "focal", email="focal@sanad.example", digest=True)
        views = [referral(category=c) for c in ("legal_aid", "primary_health", "shelter")]
        for view in views:
            await node.publish(changed(view, "received"))
        await consumed(node, 3)
        async with node.client("admin") as client:
            log = (await client.get("/deliveries")).json()
        assert sorted(d["state"] for d in log) == ["held"] * 3
        assert node.mailbox.to("focal@sanad.example") == []

        tomorrow_evening = datetime.now(UTC) + timedelta(days=1)
        assert await handlers.send_digests(node.notifier, tomorrow_evening) == 1
        (digest,) = await mails_to(node, "focal@sanad.example", 1)
        assert "(3 notifications)" in digest["Subject"]
        text = body_of(digest, "plain")
        for view in views:
            assert view.category in text and view.referral_id in text
        assert text.count("Une nouvelle orientation attend votre organisation") == 3
        assert await handlers.send_digests(node.notifier, tomorrow_evening) == 0

    async def test_an_emergency_reaches_the_focal_point_at_once_despite_a_digest(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        await set_contact(
            node,
            "focal",
            email="focal@sanad.example",
            digest=True,
            channels={"referral_received": ["in_app"], "deadline_breach": ["in_app"]},
        )
        await node.publish(changed(referral(), "received"))  # routine: waits for the digest
        await node.publish(changed(referral(urgency=Urgency.EMERGENCY), "received"))
        await node.publish(deadline(referral(urgency=Urgency.EMERGENCY), "breach"))

        mails = await mails_to(node, "focal@sanad.example", 2)
        await consumed(node, 3)
        assert all("[Urgence]" in m["Subject"] for m in mails)
        assert any("Échéance dépassée" in m["Subject"] for m in mails)


class TestWebhooks:
    async def test_a_receiver_that_was_down_gets_the_signed_delivery(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        (port,) = free_ports(1)
        async with node.client("admin") as client:
            created = await client.post(
                "/webhooks", json={"url": f"http://127.0.0.1:{port}/relais", "kinds": []}
            )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        view = referral(urgency=Urgency.EMERGENCY)
        await node.publish(changed(view, "received", payload=CANARY))

        async def failed_twice() -> bool:
            async with node.client("admin") as client:
                log = (await client.get("/deliveries")).json()
            return bool(log) and sum(a["outcome"] == "failed" for a in log[0]["attempt_log"]) >= 2

        await eventually(failed_twice, within=15, what="two failed attempts while it is down")

        received: list[tuple[bytes, dict[str, str]]] = []
        receiver = FastAPI()

        @receiver.post("/relais")
        async def hook(request: Request) -> Response:
            received.append((await request.body(), dict(request.headers)))
            return Response(status_code=204)

        server = uvicorn.Server(
            uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        try:

            async def delivered() -> bool:
                return bool(received)

            await eventually(delivered, within=15, what="the delivery once the receiver is up")
        finally:
            server.should_exit = True
            await serving

        body, headers = received[0]
        verify = readme_verifier()
        document = verify(secret, body, headers)  # the standardwebhooks package's verifier
        with pytest.raises(WebhookVerificationError):
            verify(new_secret(), body, headers)
        with pytest.raises(WebhookVerificationError):
            verify(secret, body.replace(b"legal_aid", b"legal_aix"), headers)
        assert headers["content-type"] == "application/cloudevents+json; charset=utf-8"
        assert headers["webhook-id"] == document["id"]
        # The release before's headers, kept for one more release.
        assert headers["x-relais-delivery"] == document["id"]
        assert headers["x-relais-signature"] == sign(secret, headers["x-relais-timestamp"], body)
        NotificationEvent.model_validate(document)  # what /openapi.json's webhooks say
        assert document["specversion"] == "1.0"
        assert document["type"] == "relais.notification.referral_received.v1"
        assert document["source"] == "relais://sanad/notifications"
        assert document["subject"] == view.referral_id
        assert datetime.fromisoformat(document["time"]).utcoffset() == timedelta(0)
        link = document["data"].pop("link")
        assert document["data"] == {
            "referral_id": view.referral_id,
            "category": "legal_aid",
            "urgency": "emergency",
            "status": "received",
            "deadline": "acknowledge",
            "due_at": view.acknowledge_by.isoformat(),
            "org": "sanad",
        }
        assert link == f"https://sanad.relais.example/referrals/{view.referral_id}"
        assert CANARY.encode() not in body
        async with node.client("admin") as client:
            (entry,) = (await client.get("/deliveries")).json()
        assert entry["state"] == "sent" and entry["attempt_log"][-1]["outcome"] == "sent"

    async def test_a_webhook_that_keeps_failing_is_disabled_and_the_admin_told(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF, RELAIS_WEBHOOK_MAX_FAILURES="2")
        await set_contact(node, "admin", email="admin@sanad.example")
        (port,) = free_ports(1)
        async with node.client("admin") as client:
            created = await client.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/"})
        await node.publish(changed(referral(), "received"))

        (mail,) = await mails_to(node, "admin@sanad.example", 1)
        assert "Un webhook a été désactivé" in mail["Subject"]
        async with node.client("admin") as client:
            (hook,) = (await client.get("/webhooks")).json()
        assert hook["id"] == created.json()["id"]
        assert hook["enabled"] is False and "2 failed attempts" in hook["disabled_reason"]


class TestSms:
    async def test_an_emergency_reaches_a_focal_points_phone_through_the_gateway(
        self, make_node: NodeFactory
    ) -> None:
        (port,) = free_ports(1)
        texts: list[tuple[dict[str, str], str]] = []
        gateway = FastAPI()

        @gateway.post("/sms")
        async def sms(request: Request) -> Response:
            texts.append((await request.json(), request.headers["authorization"]))
            return Response(status_code=202)

        server = uvicorn.Server(
            uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        try:
            node = await make_node(
                STAFF,
                RELAIS_SMS_GATEWAY_URL=f"http://127.0.0.1:{port}/sms",
                RELAIS_SMS_GATEWAY_TOKEN="gateway-token",
            )
            await set_contact(node, "focal", phone="+212612345678")
            view = referral(urgency=Urgency.EMERGENCY)
            await node.publish(changed(view, "received", payload=CANARY))

            async def sent() -> bool:
                return bool(texts)

            await eventually(sent, within=15, what="an SMS at the gateway")
        finally:
            server.should_exit = True
            await serving
        ((message, authorization),) = texts
        assert authorization == "Bearer gateway-token"
        assert message["to"] == "+212612345678"
        assert message["text"].startswith("Relais: [Urgence] Une nouvelle orientation")
        assert message["text"].endswith(f"/referrals/{view.referral_id}")
        assert CANARY not in message["text"]


class TestTimes:
    async def test_a_deadline_reads_in_each_persons_zone_named_in_the_mail_and_the_sms(
        self, make_node: NodeFactory
    ) -> None:
        # 23:30 UTC on 15 February 2026: 23:30 in Casablanca (UTC+0 for Ramadan since 02:00
        # UTC that day), already 00:30 on the 16th in Paris.
        due = datetime(2026, 2, 15, 23, 30, tzinfo=UTC)
        (port,) = free_ports(1)
        texts: list[str] = []
        gateway = FastAPI()

        @gateway.post("/sms")
        async def sms(request: Request) -> Response:
            texts.append((await request.json())["text"])
            return Response(status_code=202)

        server = uvicorn.Server(
            uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        try:
            node = await make_node(STAFF, RELAIS_SMS_GATEWAY_URL=f"http://127.0.0.1:{port}/sms")
            await set_contact(
                node,
                "focal",
                email="focal@sanad.example",
                phone="+212612345678",
                timezone="Europe/Paris",
                channels={"deadline_breach": ["in_app", "email", "sms"]},
            )
            await set_contact(node, "nour", email="nour@sanad.example", language="ar")
            view = referral().model_copy(update={"acknowledge_by": due})
            await node.publish(deadline(view))

            (paris,) = await mails_to(node, "focal@sanad.example", 1)
            (casablanca,) = await mails_to(node, "nour@sanad.example", 1)

            async def sent() -> bool:
                return bool(texts)

            await eventually(sent, within=15, what="an SMS at the gateway")
        finally:
            server.should_exit = True
            await serving
        in_paris = "16 févr. 2026, 00:30:00 (heure de Europe/Paris)"
        assert in_paris in paris["Subject"]
        assert f"Échéance: {in_paris}" in body_of(paris, "plain")
        assert in_paris in body_of(paris, "html")
        assert "11:30:00 م (بتوقيت المغرب)" in casablanca["Subject"]
        assert "15" in casablanca["Subject"] and "16" not in casablanca["Subject"]
        (text,) = texts
        assert in_paris in text
        async with node.client("focal") as client:
            feed = (await client.get("/feed")).json()
        # The feed's machine field stays UTC ISO 8601; the pages say it in the reader's zone.
        assert datetime.fromisoformat(feed["items"][0]["facts"]["due_at"]) == due


def readme_verifier() -> Any:
    """The verification snippet of the README's Webhooks section, as a member system runs it."""
    section = README.read_text().split("## Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the README's Webhooks section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify"]


class TestBadInput:
    async def test_an_invalid_contact_gets_422_naming_the_field(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        async with node.client("focal") as client:
            for field, value in (("email", "not-an-address"), ("phone", "0612")):
                response = await client.put("/preferences", json={field: value})
                assert response.status_code == 422
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["field"] == field
            assert (await client.get("/preferences")).json()["email"] is None

    async def test_a_time_zone_the_iana_database_does_not_know_gets_422_naming_it(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        async with node.client("focal") as client:
            for zone in ("Morocco/Rabat", "UTC+1", "../../etc/passwd", "right/UTC"):
                response = await client.put("/preferences", json={"timezone": zone})
                assert response.status_code == 422, zone
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["field"] == "timezone"
                assert "Africa/Casablanca" in response.json()["detail"]
            assert (await client.get("/preferences")).json()["timezone"] is None
            chosen = await client.put("/preferences", json={"timezone": "Europe/Paris"})
            assert chosen.status_code == 200, chosen.text
            assert (await client.get("/preferences")).json()["timezone"] == "Europe/Paris"

    async def test_a_webhook_url_that_is_no_url_or_reaches_inside_is_refused(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        async with node.client("admin") as client:
            for url in (
                "ftp://example.org/x",
                "not a url",
                "http://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
                "http://10.1.2.3/hook",  # private
                "http://192.168.1.10:8080/hook",
                "http://[fd00::1]/hook",
            ):
                response = await client.post("/webhooks", json={"url": url})
                assert response.status_code == 422, url
                assert response.json()["field"] == "url"
            assert (await client.get("/webhooks")).json() == []

    async def test_loopback_is_refused_unless_the_operator_allows_it(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF, RELAIS_WEBHOOK_ALLOWED_NETWORKS="[]")
        async with node.client("admin") as client:
            for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook"):
                response = await client.post("/webhooks", json={"url": url})
                assert response.status_code == 422, url
                assert "internal address" in response.json()["detail"]


class TestHub:
    async def test_an_escalation_tells_the_coordinators(self, make_node: NodeFactory) -> None:
        staff = [("coord", "coordinator", "en"), ("auditor", "auditor", "en")]
        node = await make_node(staff, hub=True)
        await set_contact(node, "coord", email="coord@hub.example")
        await set_contact(node, "auditor", email="auditor@hub.example")
        view = referral(urgency=Urgency.PRIORITY)
        escalation = ReferralEscalated(
            referral_id=view.referral_id,
            from_org="amal",
            to_org="sanad",
            category="legal_aid",
            urgency=Urgency.PRIORITY,
            status=Status.SENT,
            deadline="acknowledge",
            due_at=view.acknowledge_by,
        )
        await publish_net(
            node, make_event(escalation, source="relais://amal/referrals"), sender="amal"
        )

        (mail,) = await mails_to(node, "coord@hub.example", 1)
        assert mail["Subject"] == (
            "Relais: Escalation: a referral passed its deadline (acknowledgement)"
        )
        async with node.client("coord") as client:
            feed = (await client.get("/feed")).json()
        assert feed["items"][0]["facts"]["to_org"] == "sanad"  # the feed may say who
        assert node.mailbox.to("auditor@hub.example") == []


async def test_the_api_serves_only_the_callers_own_feed(make_node: NodeFactory) -> None:
    node = await make_node(STAFF)
    await node.publish(changed(referral(), "received"))
    async with node.client("focal") as focal, node.client("caseworker") as caseworker:

        async def arrived() -> bool:
            return bool((await focal.get("/feed")).json()["items"])

        await eventually(arrived, within=15, what="the focal point's notification")
        assert (await caseworker.get("/feed")).json() == {"unread": 0, "items": []}
        item = (await focal.get("/feed")).json()["items"][0]["id"]
        await caseworker.post("/feed/read", json={"ids": [item]})
        assert (await focal.get("/feed")).json()["unread"] == 1
    async with httpx.AsyncClient(base_url=node.url) as anonymous:
        assert (await anonymous.get("/api/v1/notifications/feed")).status_code == 401
