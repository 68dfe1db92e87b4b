"""A sign-in locked after too many wrong passwords is told, on real servers: the account
service's audit record of the lock (``session.login_locked``, on the node's NATS as the auth
outbox publishes it) reaches the node's admins and the account's owner, in their feed and by
e-mail; a lock of an unknown name reaches the admins only."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.contracts.audit import AuditRecorded, Outcome
from shared.events import CloudEvent, make_event, registry
from tests.integration.notifications_node import NodeFactory, NotifyingNode, make_node
from tests.waiting import eventually

__all__ = ["make_node"]  # the fixture, used by name
STAFF = [
    ("amina", "caseworker", "fr"),
    ("focal", "focal_point", "fr"),
    ("admin", "admin", "en"),
]


def locked(account: str) -> CloudEvent:
    record = AuditRecorded(
        at=datetime.now(UTC),
        actor_org="sanad",
        actor="system:auth",
        action="session.login_locked",
        object=f"user:{account}",
        digest="0" * 64,
        outcome=Outcome.REFUSED,
    )
    return make_event(record, source="relais://sanad/auth", subject=f"user:{account}")


async def publish_from_auth(node: NotifyingNode, event: CloudEvent) -> None:
    subject = registry[event.type].subject(service="auth")
    await node.bus.js.publish(subject, event.to_json(), headers={"Nats-Msg-Id": event.id})


async def kinds_in_feed(node: NotifyingNode, username: str) -> list[str]:
    async with node.client(username) as client:
        found = await client.get("/feed")
        assert found.status_code == 200, found.text
        return [item["kind"] for item in found.json()["items"]]


async def test_a_locked_account_is_told_to_its_owner_and_the_admins(
    make_node: NodeFactory,
) -> None:
    node = await make_node(STAFF)
    async with node.client("admin") as admin:
        answer = await admin.put("/preferences", json={"email": "admin@sanad.example"})
        assert answer.status_code == 200, answer.text
    await publish_from_auth(node, locked("amina"))

    async def told() -> bool:
        return "login_locked" in await kinds_in_feed(node, "amina") and (
            "login_locked" in await kinds_in_feed(node, "admin")
        )

    await eventually(told, within=20, what="amina and the admin are told of the lock")
    assert "login_locked" not in await kinds_in_feed(node, "focal")

    async def mailed() -> bool:
        return bool(node.mailbox.to("admin@sanad.example"))

    await eventually(mailed, within=20, what="the admin's mail about the lock")
    (mail,) = node.mailbox.to("admin@sanad.example")
    assert "locked after too many wrong passwords" in str(mail["Subject"])


async def test_a_lock_of_an_unknown_name_is_told_to_the_admins_only(
    make_node: NodeFactory,
) -> None:
    node = await make_node(STAFF)
    await publish_from_auth(node, locked("unknown"))

    async def told() -> bool:
        return "login_locked" in await kinds_in_feed(node, "admin")

    await eventually(told, within=20, what="the admin is told of the lock")
    assert await kinds_in_feed(node, "amina") == []
