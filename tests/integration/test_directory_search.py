"""Directory search and referral matching on a real PostgreSQL: records stored as the hub
publishes them, found by filters, folded free text and pages, and ranked for a referral."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.directory import search, search_api, store
from services.directory.matching import MatchRequest
from services.directory.search import ServiceQuery
from shared import db
from shared.auth import Role, add_user, issue_access_token
from shared.contracts.directory import Capacity, OrganisationPublished
from tests.integration.apps import app_of, node_settings

TANGER_REGION = "tanger_tetouan_al_hoceima"


def offer(service_id: str, category: str = "legal_aid", **fields: Any) -> dict[str, Any]:
    return {"service_id": service_id, "category": category, "languages": ["fra"], **fields}


def organisation(
    org_id: str,
    *services: dict[str, Any],
    status: str = "active",
    city: str = "rabat",
    name: dict[str, str] | None = None,
) -> OrganisationPublished:
    return OrganisationPublished.model_validate(
        {
            "org_id": org_id,
            "version": 1,
            "name": name or {"fr": f"Association {org_id.title()}"},
            "kind": "ngo",
            "status": status,
            "city": city,
            "services": list(services),
        }
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[db.Pool]:
    pool = await db.create_pool(database_url, max_size=4)
    yield pool
    await pool.close()


async def publish(pool: db.Pool, *records: OrganisationPublished) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for record in records:
            await store.save_organisation(conn, record)


async def found(pool: db.Pool, query: ServiceQuery, limit: int = 100) -> set[str]:
    """``org_id/service_id`` of every service the query finds (one page)."""
    async with pool.acquire() as conn:
        listings, _ = await search.search_services(conn, query, limit=limit)
    return {f"{listing.org_id}/{listing.service.service_id}" for listing in listings}


def text(q: str) -> ServiceQuery:
    return ServiceQuery(words=search.words_of(q))


class TestSearchFilters:
    async def test_only_services_of_active_organisations_are_found(self, pool: db.Pool) -> None:
        await publish(
            pool,
            *(
                organisation(status, offer("aide"), status=status)
                for status in ("applicant", "active", "suspended", "left")
            ),
        )
        assert await found(pool, ServiceQuery()) == {"active/aide"}

    async def test_a_city_finds_what_lists_it_its_region_or_is_national(
        self, pool: db.Pool
    ) -> None:
        await publish(
            pool,
            organisation(
                "spread",
                offer("in_city", cities=["tanger"]),
                offer("in_region", regions=[TANGER_REGION]),
                offer("everywhere", national=True),
                offer("in_oujda", cities=["oujda"], regions=["oriental"]),
                offer("in_tetouan", cities=["tetouan"]),
            ),
            organisation("based_tanger", offer("no_area"), city="tanger"),
            organisation("based_oujda", offer("no_area"), city="oujda"),
        )
        assert await found(pool, ServiceQuery(city=search.place_of("tanger"))) == {
            "spread/in_city",
            "spread/in_region",
            "spread/everywhere",
            "based_tanger/no_area",
        }

    async def test_a_region_finds_what_lists_it_or_one_of_its_cities_or_is_national(
        self, pool: db.Pool
    ) -> None:
        await publish(
            pool,
            organisation(
                "spread",
                offer("in_city", cities=["tanger"]),
                offer("in_region", regions=[TANGER_REGION]),
                offer("everywhere", national=True),
                offer("in_oujda", cities=["oujda"]),
                offer("in_tetouan", cities=["tetouan"]),
            ),
            organisation("based_tetouan", offer("no_area"), city="tetouan"),
            organisation("based_oujda", offer("no_area"), city="oujda"),
        )
        assert await found(pool, ServiceQuery(region=search.region_area(TANGER_REGION))) == {
            "spread/in_city",
            "spread/in_region",
            "spread/everywhere",
            "spread/in_tetouan",
            "based_tetouan/no_area",
        }

    async def test_several_values_of_one_filter_find_any_of_them(self, pool: db.Pool) -> None:
        await publish(
            pool,
            organisation(
                "langs",
                offer("wolof", languages=["wol", "fra"]),
                offer("bambara", languages=["bam"]),
                offer("french", languages=["fra"]),
            ),
        )
        query = ServiceQuery(languages=("wol", "bam"))
        assert await found(pool, query) == {"langs/wolof", "langs/bambara"}

    async def test_filters_combine_so_every_one_must_hold(self, pool: db.Pool) -> None:
        await publish(
            pool,
            organisation(
                "mixed",
                offer("shelter_women", "shelter", eligibility={"populations": ["women"]}),
                offer("shelter_all", "shelter"),
                offer(
                    "shelter_closed",
                    "shelter",
                    capacity="closed",
                    eligibility={"populations": ["women"]},
                ),
                offer("legal_women", "legal_aid", eligibility={"populations": ["women"]}),
            ),
        )
        query = ServiceQuery(
            categories=("shelter",),
            populations=("women",),
            capacities=(Capacity.OPEN, Capacity.WAITLIST),
        )
        assert await found(pool, query) == {"mixed/shelter_women"}


class TestFreeText:
    @pytest.fixture(autouse=True)
    async def directory(self, pool: db.Pool) -> None:
        await publish(
            pool,
            organisation(
                "sanad",
                offer("fes", description={"fr": "Permanence juridique à Fès, le mardi"}),
                offer("tetouan", description={"fr": "Accueil de jour à TÉTOUAN"}),
                offer(
                    "arabic",
                    description={"ar": "مُسَاعَدَةٌ قَانُونِيَّةٌ لِلْمُهَاجِرِينَ"},
                ),
                offer("percent", description={"fr": "Réduction de 100% sur les frais"}),
                name={"fr": "Association Sanad", "ar": "جمعية سند", "en": "Sanad"},
            ),
            organisation(
                "amal",
                offer("soins", "primary_health", description={"fr": "Consultations"}),
                name={"fr": "Centre Amal", "ar": "مركز أمل للصحة", "en": "Amal centre"},
            ),
        )

    async def test_french_is_found_without_its_accents_or_case(self, pool: db.Pool) -> None:
        assert await found(pool, text("fes")) == {"sanad/fes"}
        assert await found(pool, text("Tétouan")) == {"sanad/tetouan"}
        assert await found(pool, text("tetouan")) == {"sanad/tetouan"}
        assert await found(pool, text("FÈS mardi")) == {"sanad/fes"}

    async def test_arabic_is_found_with_or_without_its_vowel_marks(self, pool: db.Pool) -> None:
        assert await found(pool, text("مساعدة قانونية")) == {"sanad/arabic"}
        assert await found(pool, text("مُسَاعَدَة")) == {"sanad/arabic"}

    async def test_arabic_alef_and_teh_marbuta_variants_are_one_letter(self, pool: db.Pool) -> None:
        # أمل written with a bare alef, as people often type it; قانونيه with heh.
        assert await found(pool, text("امل")) == {"amal/soins"}
        assert await found(pool, text("إمل")) == {"amal/soins"}
        assert await found(pool, text("قانونيه")) == {"sanad/arabic"}

    async def test_organisation_names_are_searched_in_every_language(self, pool: db.Pool) -> None:
        assert await found(pool, text("amal centre")) == {"amal/soins"}
        assert await found(pool, text("سند")) == {
            "sanad/fes",
            "sanad/tetouan",
            "sanad/arabic",
            "sanad/percent",
        }

    async def test_every_word_must_be_found(self, pool: db.Pool) -> None:
        assert await found(pool, text("sanad fes")) == {"sanad/fes"}
        assert await found(pool, text("amal fes")) == set()

    async def test_a_percent_sign_is_text_not_a_wildcard(self, pool: db.Pool) -> None:
        assert await found(pool, text("100%")) == {"sanad/percent"}
        assert await found(pool, text("%")) == {"sanad/percent"}


class TestPaging:
    async def test_pages_follow_each_other_without_gaps_or_repeats(self, pool: db.Pool) -> None:
        await publish(
            pool,
            *(
                organisation(
                    f"org_{n:02d}", offer("aide"), offer("ecoute", "mental_health_psychosocial")
                )
                for n in range(12)
            ),
        )
        seen: list[str] = []
        after: search.Position | None = None
        pages = 0
        async with pool.acquire() as conn:
            while True:
                listings, last = await search.search_services(
                    conn, ServiceQuery(), after=after, limit=10
                )
                pages += 1
                seen.extend(f"{s.org_id}/{s.service.service_id}" for s in listings)
                if last is None:
                    break
                # Through the opaque cursor, as a client would.
                after = search.decode_cursor(search.encode_cursor(last))
        assert pages == 3
        assert len(seen) == 24 == len(set(seen))
        assert seen == sorted(seen)

    async def test_an_exact_last_page_says_there_is_no_next(self, pool: db.Pool) -> None:
        await publish(pool, *(organisation(f"org_{n}", offer("aide")) for n in range(5)))
        async with pool.acquire() as conn:
            listings, last = await search.search_services(conn, ServiceQuery(), limit=5)
        assert len(listings) == 5
        assert last is None


NETWORK = (
    organisation("city_org", offer("permanence", cities=["tanger"], languages=["wol", "fra"])),
    organisation("region_org", offer("permanence", regions=[TANGER_REGION])),
    organisation("national_org", offer("permanence", national=True, capacity="waitlist")),
    organisation("closed_org", offer("permanence", cities=["tanger"], capacity="closed")),
    organisation("no_referrals", offer("permanence", cities=["tanger"], takes_referrals=False)),
    organisation("suspended_org", offer("permanence", cities=["tanger"]), status="suspended"),
    organisation("oujda_org", offer("permanence", cities=["oujda"])),
    organisation("minors_only", offer("permanence", national=True, eligibility={"max_age": 17})),
    organisation("health_org", offer("soins", "primary_health", cities=["tanger"])),
    organisation("sanad", offer("permanence", cities=["tanger"])),
)


class TestMatching:
    async def test_a_referral_gets_the_eligible_services_nearest_first(self, pool: db.Pool) -> None:
        await publish(pool, *NETWORK)
        asked = MatchRequest(category="legal_aid", city="tanger", languages=["wol"], age=30)
        async with pool.acquire() as conn:
            suggestions = await search.suggest(conn, asked, sender_org="sanad")
        assert [s.org_id for s in suggestions] == ["city_org", "region_org", "national_org"]
        assert [r.model_dump(mode="json") for r in suggestions[0].reasons] == [
            {"code": "same_city", "city": "tanger"},
            {"code": "language_match", "languages": ["wol"]},
            {"code": "capacity_open"},
        ]
        assert suggestions[0].org_name.fr == "Association City_Org"
        assert suggestions[0].service.cities == ["tanger"]

    async def test_the_sql_prefilter_leaves_out_what_can_never_be_suggested(
        self, pool: db.Pool
    ) -> None:
        await publish(pool, *NETWORK)
        asked = MatchRequest(category="legal_aid", city="tanger")
        async with pool.acquire() as conn:
            loaded = await search.candidates(
                conn, asked, place=search.place_of("tanger"), sender_org="sanad"
            )
        # Eligibility is judged by the ranking, so minors_only is still loaded here.
        assert {c.org_id for c in loaded} == {
            "city_org",
            "region_org",
            "national_org",
            "minors_only",
        }

    async def test_no_city_considers_every_place_and_the_limit_holds(self, pool: db.Pool) -> None:
        await publish(pool, *NETWORK)
        asked = MatchRequest(category="legal_aid", limit=3)
        async with pool.acquire() as conn:
            suggestions = await search.suggest(conn, asked, sender_org="sanad")
        assert len(suggestions) == 3
        everyone = MatchRequest(category="legal_aid", limit=100)
        async with pool.acquire() as conn:
            all_of_them = await search.suggest(conn, everyone, sender_org="sanad")
        assert {s.org_id for s in all_of_them} == {
            "city_org",
            "region_org",
            "national_org",
            "oujda_org",
            "minors_only",
        }


@pytest.fixture
async def api(pool: db.Pool, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The search router in an app of its own, as a caseworker of sanad calls it."""
    app = app_of(node_settings(database_url), pool, [("/api/v1/directory", search_api.router)])
    await add_user(pool, "caseworker", "correct horse battery", Role.CASEWORKER)
    token = await issue_access_token(pool, "caseworker")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://sanad.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


class TestRoutes:
    async def test_search_pages_through_the_cursor_it_returns(
        self, pool: db.Pool, api: httpx.AsyncClient
    ) -> None:
        await publish(pool, *NETWORK)
        first = await api.get(
            "/api/v1/directory/services",
            params={"category": "legal_aid", "city": "tanger", "limit": 2},
        )
        assert first.status_code == 200, first.text
        body = first.json()
        assert [s["org_id"] for s in body["services"]] == ["city_org", "closed_org"]
        assert body["services"][0]["org_name"]["fr"] == "Association City_Org"
        second = await api.get(
            "/api/v1/directory/services",
            params={
                "category": "legal_aid",
                "city": "tanger",
                "limit": 2,
                "cursor": body["next_cursor"],
            },
        )
        assert [s["org_id"] for s in second.json()["services"]] == [
            "minors_only",
            "national_org",
        ]

    async def test_search_takes_two_letter_language_codes(
        self, pool: db.Pool, api: httpx.AsyncClient
    ) -> None:
        await publish(pool, *NETWORK)
        response = await api.get("/api/v1/directory/services", params={"language": "wo"})
        assert [s["org_id"] for s in response.json()["services"]] == ["city_org"]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"city": "tangier"}, "city"),
            ({"region": "nowhere"}, "region"),
            ({"category": "legal"}, "category"),
            ({"language": "klingon"}, "language"),
            ({"population": "aliens"}, "population"),
            ({"capacity": "full"}, "capacity"),
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"limit": "101"}, "limit"),
        ],
    )
    async def test_search_refuses_unknown_codes_naming_the_field(
        self, api: httpx.AsyncClient, params: dict[str, str], field: str
    ) -> None:
        response = await api.get("/api/v1/directory/services", params=params)
        assert response.status_code == 422, response.text
        # FastAPI's own checks name the field "query.<name>.<index>".
        assert field in response.json()["field"].split(".")

    async def test_an_unknown_city_is_answered_with_the_code_meant(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.get("/api/v1/directory/services", params={"city": "Tangier"})
        assert "tanger" in response.json()["detail"]

    async def test_match_ranks_and_never_suggests_the_callers_own_organisation(
        self, pool: db.Pool, api: httpx.AsyncClient
    ) -> None:
        await publish(pool, *NETWORK)
        response = await api.post(
            "/api/v1/directory/match",
            json={
                "category": "legal_aid",
                "city": "tanger",
                "languages": ["wo"],
                "age": 30,
                "urgency": "priority",
            },
        )
        assert response.status_code == 200, response.text
        suggestions = response.json()["suggestions"]
        assert [s["org_id"] for s in suggestions] == ["city_org", "region_org", "national_org"]
        assert {"code": "language_match", "languages": ["wol"]} in suggestions[0]["reasons"]
        assert suggestions[0]["score"] > suggestions[1]["score"] > suggestions[2]["score"]
        assert suggestions[2]["service"]["capacity"] == "waitlist"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"category": "legal"}, "category"),
            ({"category": "legal_aid", "city": "tangier"}, "city"),
            ({"category": "legal_aid", "languages": ["fr", "xx"]}, "languages"),
            ({"category": "legal_aid", "populations": ["aliens"]}, "populations"),
            ({"category": "legal_aid", "urgency": "whenever"}, "urgency"),
            ({"category": "legal_aid", "population": ["women"]}, "population"),
            ({"city": "tanger"}, "category"),
        ],
    )
    async def test_match_refuses_a_bad_request_naming_the_field(
        self, api: httpx.AsyncClient, body: dict[str, Any], field: str
    ) -> None:
        response = await api.post("/api/v1/directory/match", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["field"].split(".")[0] == field

    async def test_search_and_match_need_credentials(self, api: httpx.AsyncClient) -> None:
        anonymous = {"Authorization": ""}
        assert (await api.get("/api/v1/directory/services", headers=anonymous)).status_code == 401
        refused = await api.post(
            "/api/v1/directory/match", json={"category": "legal_aid"}, headers=anonymous
        )
        assert refused.status_code == 401
