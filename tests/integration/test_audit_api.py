"""The audit API on a real PostgreSQL through real bearer tokens: the log a page at a time,
filters and the field a bad one names, exports (themselves recorded), the figures with small
counts hidden, and retention that keeps the chain verifiable."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.audit import handlers, retention, store, verification
from services.audit.api import router
from services.auth.main import service as auth_service
from shared import db
from shared.auth import Role, add_user, issue_access_token
from shared.crypto import NodeKeys
from shared.service import ServiceContext
from shared.settings import NodeRole
from tests.integration.apps import app_of, node_settings
from tests.integration.audit_fixtures import T0, drafts

PREFIX = "/api/v1/audit"


@dataclass
class Hub:
    client: httpx.AsyncClient
    ctx: ServiceContext
    tokens: dict[str, str]

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
async def hub(database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    settings = node_settings(database_url, node_id="hub", role=NodeRole.SECRETARIAT)
    settings = settings.model_copy(update={"org": "secretariat"})
    pool = await db.create_pool(database_url, max_size=4)
    tokens = {}
    for name, role in (
        ("awa", Role.AUDITOR),
        ("cheikh", Role.COORDINATOR),
        ("karim", Role.CASEWORKER),
    ):
        await add_user(pool, name, "correct horse battery", role)
        tokens[role.value] = await issue_access_token(pool, name)
    app = app_of(
        settings,
        pool,
        [("/api/v1/auth", auth_service.router), (PREFIX, router)],
        services=("auth", "audit"),
    )
    ctx: ServiceContext = app.state.contexts["audit"]
    ctx.keys = NodeKeys.load_or_create(tmp_path / "keys")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield Hub(client, ctx, tokens)
    finally:
        await handlers.close(ctx)
        await pool.close()


class TestTheLogAPageAtATime:
    async def test_every_record_once_in_order_across_pages(self, hub: Hub) -> None:
        await handlers.append(hub.ctx, drafts(250))
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor is not None else {})}
            page = await hub.client.get(
                f"{PREFIX}/records", params=params, headers=hub.as_("auditor")
            )
            assert page.status_code == 200, page.text
            seen += [item["seq"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(1, 251))

    async def test_filters_by_action_actor_object_and_time(self, hub: Hub) -> None:
        await handlers.append(hub.ctx, drafts(20))
        await handlers.append(hub.ctx, drafts(3, start=20, actor="user:leila"))
        get = hub.client.get
        auditor = hub.as_("auditor")
        accepted = (
            await get(f"{PREFIX}/records", params={"action": "referral.accepted"}, headers=auditor)
        ).json()
        assert accepted["items"] and {i["action"] for i in accepted["items"]} == {
            "referral.accepted"
        }
        leila = (
            await get(f"{PREFIX}/records", params={"actor": "user:leila"}, headers=auditor)
        ).json()
        assert [i["object"] for i in leila["items"]] == [
            "referral:0020",
            "referral:0021",
            "referral:0022",
        ]
        one = (
            await get(f"{PREFIX}/records", params={"object": "referral:0007"}, headers=auditor)
        ).json()
        assert [i["seq"] for i in one["items"]] == [8]
        window = {
            "from": (T0 + timedelta(minutes=5)).isoformat(),
            "to": (T0 + timedelta(minutes=8)).isoformat(),
        }
        timed = (await get(f"{PREFIX}/records", params=window, headers=auditor)).json()
        assert [i["object"] for i in timed["items"]] == [
            "referral:0005",
            "referral:0006",
            "referral:0007",
        ]
        newest = (
            await get(f"{PREFIX}/records", params={"order": "desc", "limit": 2}, headers=auditor)
        ).json()
        assert [i["seq"] for i in newest["items"]] == [23, 22] and newest["next_cursor"] == 22

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"from": "yesterday"}, "from"),
            ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
            ({"limit": 0}, "limit"),
            ({"limit": 5000}, "limit"),
            ({"org": "Not An Org"}, "org"),
            ({"action": "DROP TABLE"}, "action"),
            ({"action": "referral.acceptd"}, "action"),
            ({"outcome": "maybe"}, "outcome"),
            ({"cursor": -1}, "cursor"),
            ({"order": "sideways"}, "order"),
        ],
    )
    async def test_a_bad_filter_gets_422_naming_the_field(
        self, hub: Hub, params: dict[str, Any], field: str
    ) -> None:
        response = await hub.client.get(
            f"{PREFIX}/records", params=params, headers=hub.as_("auditor")
        )
        assert response.status_code == 422
        assert response.json()["field"] == field

    async def test_only_the_admin_and_the_auditor_read_the_nodes_log(self, hub: Hub) -> None:
        for role in ("caseworker", "coordinator"):
            response = await hub.client.get(f"{PREFIX}/records", headers=hub.as_(role))
            assert response.status_code == 403, role


class TestExports:
    async def test_a_csv_export_holds_every_record_and_is_itself_recorded(self, hub: Hub) -> None:
        await handlers.append(hub.ctx, drafts(30))
        response = await hub.client.get(
            f"{PREFIX}/records/export", params={"format": "csv"}, headers=hub.as_("auditor")
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(r["seq"]) for r in rows[:30]] == list(range(1, 31))
        # Beside the UTC moment, the one a person reads: Moroccan time, its zone in the header.
        casablanca = ZoneInfo("Africa/Casablanca")
        for row in rows[:30]:
            moment = datetime.fromisoformat(row["at"])
            assert moment.utcoffset() == timedelta(0)
            local = row["at_local (Africa/Casablanca)"]
            assert local == moment.astimezone(casablanca).strftime("%Y-%m-%d %H:%M:%S")
        # The records are of 1 March 2026, in Ramadan, when Morocco keeps UTC+0.
        assert (rows[0]["at"], rows[0]["at_local (Africa/Casablanca)"]) == (
            "2026-03-01T09:00:00+00:00",
            "2026-03-01 09:00:00",
        )
        exported = (
            await hub.client.get(
                f"{PREFIX}/records", params={"action": "audit.exported"}, headers=hub.as_("auditor")
            )
        ).json()["items"]
        assert [(e["actor"], e["object"]) for e in exported] == [("user:awa", "audit:own")]
        report = (await hub.client.get(f"{PREFIX}/verification", headers=hub.as_("auditor"))).json()
        assert report["ok"] and report["last_seq"] >= 31

    async def test_an_action_no_service_records_is_refused_by_name(self, hub: Hub) -> None:
        # Well formed but not a code any service records: a typo would otherwise read as
        # "no such record".
        for path in ("/records", "/records/export", "/network"):
            response = await hub.client.get(
                f"{PREFIX}{path}", params={"action": "referral.acceptd"}, headers=hub.as_("auditor")
            )
            assert response.status_code == 422, path
            problem = response.json()
            assert problem["field"] == "action"
            assert "referral.acceptd is not an audit action" in problem["detail"]

    async def test_filters_by_outcome_and_lists_the_actors_the_log_names(self, hub: Hub) -> None:
        await handlers.append(hub.ctx, drafts(4))
        refused = drafts(2, start=4, actor="user:leila")
        refused = [replace(draft, outcome="refused") for draft in refused]
        await handlers.append(hub.ctx, refused)
        found = await hub.client.get(
            f"{PREFIX}/records", params={"outcome": "refused"}, headers=hub.as_("auditor")
        )
        assert found.status_code == 200, found.text
        assert [i["object"] for i in found.json()["items"]] == ["referral:0004", "referral:0005"]
        actors = await hub.client.get(f"{PREFIX}/actors", headers=hub.as_("auditor"))
        assert actors.status_code == 200
        assert actors.json() == ["user:focal", "user:leila"]
        denied = await hub.client.get(f"{PREFIX}/actors", headers=hub.as_("caseworker"))
        assert denied.status_code == 403

    async def test_an_ndjson_export_of_a_filtered_range(self, hub: Hub) -> None:
        await handlers.append(hub.ctx, drafts(10))
        response = await hub.client.get(
            f"{PREFIX}/records/export",
            params={"format": "ndjson", "action": "referral.payload_read"},
            headers=hub.as_("auditor"),
        )
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert [x["object"] for x in lines] == [f"referral:{i:04d}" for i in range(0, 10, 2)]


async def _referrals(
    ctx: ServiceContext, rows: Sequence[tuple[str, str, str, bool, float | None]]
) -> None:
    async with ctx.pool.acquire() as conn:
        for i, (category, region, to_org, escalated, answer_hours) in enumerate(rows):
            created = T0 + timedelta(days=i % 3)
            await conn.execute(
                "INSERT INTO audit.referral_fact (referral_id, from_org, to_org, category, urgency,"
                " region, created_at, status, answered_at, escalated)"
                " VALUES (gen_random_uuid(), 'sanad', $1, $2, 'routine', $3, $4, $5, $6, $7)",
                to_org,
                category,
                region,
                created,
                "accepted" if answer_hours is not None else "sent",
                None if answer_hours is None else created + timedelta(hours=answer_hours),
                escalated,
            )


class TestFigures:
    async def test_counts_under_five_are_shown_as_less_than_five(self, hub: Hub) -> None:
        await _referrals(
            hub.ctx,
            [("legal_aid", "oriental", "amal", i < 5, 10.0 + i) for i in range(7)]
            + [("primary_health", "oriental", "nour", True, 2.0) for _ in range(3)],
        )
        coordinator = hub.as_("coordinator")
        by_category = await hub.client.get(
            f"{PREFIX}/figures/referrals", params={"by": ["category"]}, headers=coordinator
        )
        # 3 under five, and 7 hidden beside it: the total of 10 (by=[]) minus 7 would give 3.
        assert by_category.json() == [
            {"category": "legal_aid", "referrals": "x"},
            {"category": "primary_health", "referrals": "<5"},
        ]
        everything = await hub.client.get(
            f"{PREFIX}/figures/referrals", params={"by": []}, headers=coordinator
        )
        assert everything.json() == [{"referrals": 10}]
        overdue = (await hub.client.get(f"{PREFIX}/figures/overdue", headers=coordinator)).json()
        assert overdue == [  # no rate beside a hidden count: 5 over the rate would give 7
            {"org": "amal", "referrals": "x", "overdue": 5, "overdue_rate": None},
            {"org": "nour", "referrals": "<5", "overdue": "<5", "overdue_rate": None},
        ]
        times = (
            await hub.client.get(
                f"{PREFIX}/figures/response-times", params={"by": "category"}, headers=coordinator
            )
        ).json()
        assert times[0]["median_hours_to_answer"] == 13.0
        assert times[1]["median_hours_to_answer"] is None  # three cases: no time shown
        assert [t["referrals"] for t in times] == ["x", "<5"]  # as the referral figures

    async def test_no_small_cell_of_a_two_way_table_comes_back_by_subtraction(
        self, hub: Hub
    ) -> None:
        await _referrals(
            hub.ctx,
            [("legal_aid", "oriental", "amal", False, None) for _ in range(9)]
            + [("legal_aid", "souss_massa", "amal", False, None) for _ in range(8)]
            + [("primary_health", "oriental", "amal", False, None) for _ in range(2)]
            + [("primary_health", "souss_massa", "amal", False, None) for _ in range(12)],
        )
        coordinator = hub.as_("coordinator")

        async def table(*by: str) -> list[dict[str, Any]]:
            got = await hub.client.get(
                f"{PREFIX}/figures/referrals", params={"by": list(by)}, headers=coordinator
            )
            assert got.status_code == 200, got.text
            return list(got.json())

        cells = {
            (r["category"], r["region"]): r["referrals"] for r in await table("category", "region")
        }
        assert cells[("primary_health", "oriental")] == "<5"
        # Its row total (14, by category) and its column total (11, by region) are published:
        # a second cell of each is hidden, and so on until each line has two or none.
        assert {r["category"]: r["referrals"] for r in await table("category")} == {
            "legal_aid": 17,
            "primary_health": 14,
        }
        assert {r["region"]: r["referrals"] for r in await table("region")} == {
            "oriental": 11,
            "souss_massa": 20,
        }
        assert cells == {
            ("legal_aid", "oriental"): "x",
            ("legal_aid", "souss_massa"): "x",
            ("primary_health", "oriental"): "<5",
            ("primary_health", "souss_massa"): "x",
        }

    async def test_a_total_a_table_had_to_hide_is_hidden_where_it_is_published(
        self, hub: Hub
    ) -> None:
        # amal received 4 + 4: beside its total of 8 both would be 4. No other count of
        # amal's row can be hidden, so its total goes, in the table and in the list by
        # receiver that publishes it; there, it would be alone beside the total of
        # everything (18), so nour's goes too.
        await _referrals(
            hub.ctx,
            [("legal_aid", "oriental", "amal", False, None) for _ in range(4)]
            + [("primary_health", "oriental", "amal", False, None) for _ in range(4)]
            + [("legal_aid", "oriental", "nour", False, None) for _ in range(10)],
        )
        coordinator = hub.as_("coordinator")

        async def table(*by: str) -> list[dict[str, Any]]:
            got = await hub.client.get(
                f"{PREFIX}/figures/referrals", params={"by": list(by)}, headers=coordinator
            )
            assert got.status_code == 200, got.text
            return list(got.json())

        assert await table("to_org", "category") == [
            {"to_org": "amal", "category": "legal_aid", "referrals": "<5"},
            {"to_org": "amal", "category": "primary_health", "referrals": "<5"},
            {"to_org": "nour", "category": "legal_aid", "referrals": "x"},
        ]
        assert await table("to_org") == [
            {"to_org": "amal", "referrals": "x"},
            {"to_org": "nour", "referrals": "x"},
        ]
        overdue = (await hub.client.get(f"{PREFIX}/figures/overdue", headers=coordinator)).json()
        assert [o["referrals"] for o in overdue] == ["x", "x"]  # the same counts, hidden alike
        assert await table() == [{"referrals": 18}]

    async def test_months_are_counted_in_the_nodes_zone(self, hub: Hub) -> None:
        # 23:30 UTC on 31 October 2026 is 00:30 on 1 November in Casablanca (UTC+1).
        late = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
        assert hub.ctx.settings.timezone == "Africa/Casablanca"
        async with hub.ctx.pool.acquire() as conn:
            for at in [late] * 6 + [late - timedelta(hours=2)] * 5:
                await conn.execute(
                    "INSERT INTO audit.referral_fact (referral_id, from_org, to_org, category,"
                    " urgency, region, created_at, status)"
                    " VALUES (gen_random_uuid(), 'sanad', 'amal', 'legal_aid', 'routine',"
                    " 'oriental', $1, 'sent')",
                    at,
                )
        got = await hub.client.get(
            f"{PREFIX}/figures/referrals", params={"by": "month"}, headers=hub.as_("coordinator")
        )
        assert got.json() == [
            {"month": "2026-10", "referrals": 5},  # 22:30 UTC: 23:30 on the 31st
            {"month": "2026-11", "referrals": 6},  # in UTC these would be October's
        ]

    async def test_a_bad_dimension_gets_422_and_the_figures_are_the_hubs_coordinators(
        self, hub: Hub
    ) -> None:
        bad = await hub.client.get(
            f"{PREFIX}/figures/referrals", params={"by": "colour"}, headers=hub.as_("coordinator")
        )
        assert (bad.status_code, bad.json()["field"]) == (422, "by.0")
        refused = await hub.client.get(
            f"{PREFIX}/figures/referrals", params={"by": "month"}, headers=hub.as_("caseworker")
        )
        assert refused.status_code == 403


class TestRetention:
    async def test_pruned_records_are_archived_and_the_chain_verifies_from_the_cut(
        self, hub: Hub, tmp_path: Path
    ) -> None:
        await handlers.append(hub.ctx, drafts(20))
        checkpoint = await handlers.make_checkpoint(hub.ctx)
        assert checkpoint is not None and checkpoint.seq == 20
        await handlers.append(hub.ctx, drafts(5, start=20))
        async with hub.ctx.pool.acquire() as conn:
            pruned = await retention.prune(
                conn,
                org="secretariat",
                node_id="hub",
                before=datetime.now(UTC) + timedelta(seconds=1),
                archive_dir=tmp_path / "archive",
            )
        assert (pruned.archived, pruned.cut.seq) == (20, 20)
        lines = pruned.archive.read_text().splitlines()
        assert len(lines) == 21 and json.loads(lines[-1])["hash"] == checkpoint.hash
        audit = await handlers.audit_of(hub.ctx)
        async with audit.writer.acquire() as conn:
            assert await store.count_after(conn, 0) == 6  # 5 kept, and the prune's own record
            points = verification.signed_checkpoints(
                await store.own_checkpoints(conn),
                org="secretariat",
                node_id="hub",
                public_keys={checkpoint.key_id: hub.ctx.keys.public_keys()[0]["public_key"]},  # type: ignore[union-attr]
            )
            report = await verification.verify(conn, points)
        assert report.ok and (report.first_seq, report.last_seq) == (21, 26)
