"""A refused second leaf link, as the hub's directory records it on a real PostgreSQL
(services/directory/second_links.py): one incident per member while the refusals keep coming,
each advisory counted once, the opening audited and told to the member, nothing else sent."""

from __future__ import annotations

from services.directory import second_links
from shared import db
from shared.bus import Bus
from shared.service import ServiceContext
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings


async def test_refusals_make_one_incident_told_to_the_member_once(
    database_url: str, hub_bus: Bus
) -> None:
    settings = NodeSettings(
        node_id="hub",
        org="secretariat",
        nats_url="nats://127.0.0.1:1",
        database_url=database_url,
        secret_key=DEMO_SECRET,
        demo=True,
        role=NodeRole.SECRETARIAT,
    )
    pool = await db.create_pool(database_url, max_size=2, service="directory")
    try:
        ctx = ServiceContext(name="directory", settings=settings, pool=pool, bus=hub_bus)
        assert await second_links.record(ctx, "TR2Ek47EgXYpy3YmFueeCY", "amal", "127.0.0.1")
        # The same advisory again (another directory of a hub cluster heard it), then the
        # copy's retry a second later: counted in the same incident, told to no one again.
        assert not await second_links.record(ctx, "TR2Ek47EgXYpy3YmFueeCY", "amal", "127.0.0.1")
        assert not await second_links.record(ctx, "TR2Ek47EgXYpy3YmFueeD1", "amal", "127.0.0.1")
        (incident,) = await second_links.incidents(ctx)
        assert (incident["org_id"], incident["refused"]) == ("amal", 2)
        rows = await pool.fetch("SELECT subject, event FROM directory.outbox ORDER BY seq")
        sent = [(r["subject"], r["event"]["type"]) for r in rows]
        assert (
            "relais.net.secretariat.amal.directory.second_link_refused",
            "relais.directory.second_link_refused.v1",
        ) in sent
        audited = [
            r["event"]["data"] for r in rows if r["event"]["type"] == "relais.audit.recorded.v1"
        ]
        assert [(a["action"], a["object"], a["outcome"]) for a in audited] == [
            ("link.second_refused", "organisation:amal", "refused")
        ]
        assert sum(1 for _, kind in sent if kind.endswith("second_link_refused.v1")) == 1
    finally:
        await pool.close()
