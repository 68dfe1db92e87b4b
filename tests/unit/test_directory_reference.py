"""The directory's reference data: lists a case worker can trust (Morocco's regions and cities,
service categories, languages, populations, in French, Arabic and English), codes checked
with an error that names the field and the code meant, and the routes that serve the lists."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.directory import reference, reference_api
from shared.auth import Principal, Role, guarded_routes, require
from shared.errors import Invalid
from shared.i18n import SUPPORTED

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
ARABIC = re.compile(r"[\u0600-\u06ff]")


def every_labelled() -> list[reference.Labelled]:
    data = reference.reference()
    return [
        *data.sectors.values(),
        *data.categories.values(),
        *data.regions.values(),
        *data.cities.values(),
        *data.languages.values(),
        *data.populations.values(),
    ]


class TestMoroccoRegionsAndCities:
    def test_morocco_has_its_twelve_regions_with_their_iso_codes(self) -> None:
        assert {code: region.iso for code, region in reference.regions().items()} == {
            "tanger_tetouan_al_hoceima": "MA-01",
            "oriental": "MA-02",
            "fes_meknes": "MA-03",
            "rabat_sale_kenitra": "MA-04",
            "beni_mellal_khenifra": "MA-05",
            "casablanca_settat": "MA-06",
            "marrakech_safi": "MA-07",
            "draa_tafilalet": "MA-08",
            "souss_massa": "MA-09",
            "guelmim_oued_noun": "MA-10",
            "laayoune_sakia_el_hamra": "MA-11",
            "dakhla_oued_ed_dahab": "MA-12",
        }

    def test_regions_are_listed_in_iso_order(self) -> None:
        isos = [region.iso for region in reference.regions().values()]
        assert isos == sorted(isos)

    def test_the_cities_where_migrants_live_are_listed(self) -> None:
        assert {
            "rabat", "sale", "temara", "kenitra", "casablanca", "mohammedia", "el_jadida",
            "tanger", "tetouan", "fnideq", "al_hoceima", "oujda", "nador", "berkane", "fes",
            "meknes", "marrakech", "safi", "agadir", "tiznit", "beni_mellal", "errachidia",
            "ouarzazate", "guelmim", "laayoune", "dakhla",
        } <= set(reference.cities())  # fmt: skip

    def test_every_city_lies_in_a_listed_region(self) -> None:
        assert {city.region for city in reference.cities().values()} <= set(reference.regions())

    @pytest.mark.parametrize(
        ("city", "iso"),
        [
            ("tanger", "MA-01"),
            ("fnideq", "MA-01"),
            ("oujda", "MA-02"),
            ("nador", "MA-02"),
            ("taza", "MA-03"),
            ("temara", "MA-04"),
            ("el_jadida", "MA-06"),
            ("safi", "MA-07"),
            ("errachidia", "MA-08"),
            ("tiznit", "MA-09"),
            ("tan_tan", "MA-10"),
            ("laayoune", "MA-11"),
            ("dakhla", "MA-12"),
        ],
    )
    def test_a_city_is_in_its_own_region(self, city: str, iso: str) -> None:
        assert reference.regions()[reference.region_of(city)].iso == iso

    def test_every_region_has_at_least_one_city(self) -> None:
        assert all(reference.cities_in(code) for code in reference.regions())

    def test_a_region_lists_its_cities_in_file_order(self) -> None:
        assert [city.code for city in reference.cities_in("oriental")] == [
            "oujda",
            "nador",
            "berkane",
        ]


class TestServiceTaxonomy:
    def test_the_services_members_asked_for_are_categories(self) -> None:
        assert {
            "legal_aid", "asylum_regularisation", "primary_health", "emergency_health",
            "sexual_reproductive_health", "mental_health_psychosocial", "gbv_response",
            "child_protection", "shelter", "food_basic_needs", "education",
            "vocational_livelihoods", "family_tracing", "voluntary_return", "interpretation",
        } <= set(reference.categories())  # fmt: skip

    def test_every_category_is_counted_under_a_listed_sector(self) -> None:
        for category in reference.categories().values():
            assert category.sector in reference.sectors(), category.code

    def test_sectors_are_the_humanitarian_clusters_of_3w_reports(self) -> None:
        assert {code: sector.label["en"] for code, sector in reference.sectors().items()} == {
            "protection": "Protection",
            "health": "Health",
            "shelter": "Shelter",
            "food_security": "Food security",
            "education": "Education",
            "livelihoods": "Early recovery and livelihoods",
        }

    def test_every_sector_counts_at_least_one_category(self) -> None:
        used = {category.sector for category in reference.categories().values()}
        assert used == set(reference.sectors())

    def test_health_services_are_counted_under_health(self) -> None:
        health = {code for code, item in reference.categories().items() if item.sector == "health"}
        assert health == {
            "primary_health",
            "emergency_health",
            "sexual_reproductive_health",
            "mental_health_psychosocial",
        }


class TestLanguagesAndPopulations:
    def test_languages_migrants_speak_are_listed_by_iso_639_3_code(self) -> None:
        assert {
            "ary", "ara", "zgh", "tzm", "shi", "rif", "fra", "eng", "spa", "por", "wol", "bam",
            "lin", "ful", "sus", "mnk", "dyu", "hau", "yor", "ibo", "pcm", "tir", "amh", "som",
            "apd", "kin", "xms",
        } <= set(reference.languages())  # fmt: skip
        assert all(re.fullmatch(r"[a-z]{3}", code) for code in reference.languages())

    def test_every_alias_leads_to_a_listed_language(self) -> None:
        aliases = reference.language_aliases()
        assert set(aliases.values()) <= set(reference.languages())
        assert not set(aliases) & set(reference.languages())

    def test_the_populations_a_service_can_be_for_are_listed(self) -> None:
        assert {
            "everyone", "children", "unaccompanied_minors", "women", "pregnant_women",
            "families", "gbv_survivors", "trafficking_survivors", "undocumented",
            "asylum_seekers", "refugees", "people_in_transit", "people_with_disabilities",
            "elderly",
        } <= set(reference.populations())  # fmt: skip


class TestLabelsInEveryLanguage:
    def test_the_reference_languages_are_the_interface_languages(self) -> None:
        assert reference.LANGS == SUPPORTED
        assert reference.DEFAULT_LANG == "fr"

    def test_every_label_and_description_is_filled_in_french_arabic_and_english(self) -> None:
        texts = [item.label for item in every_labelled()]
        texts += [category.description for category in reference.categories().values()]
        for text in texts:
            assert set(text) == {"fr", "ar", "en"}
            assert all(value.strip() for value in text.values()), text

    def test_arabic_labels_are_in_arabic_script_and_the_others_are_not(self) -> None:
        for item in every_labelled():
            assert ARABIC.search(item.label["ar"]), item.code
            assert not ARABIC.search(item.label["fr"] + item.label["en"]), item.code

    def test_every_code_is_snake_case_and_fits_an_event_code(self) -> None:
        for item in every_labelled():
            assert SNAKE_CASE.fullmatch(item.code), item.code
            assert len(item.code) <= 41, item.code

    def test_a_label_is_given_in_the_language_asked_for(self) -> None:
        tanger = reference.cities()["tanger"]
        assert reference.label(tanger, "fr") == "Tanger"
        assert reference.label(tanger, "ar") == "طنجة"
        assert reference.label(tanger, "en") == "Tangier"

    @pytest.mark.parametrize("lang", ["de", ""])
    def test_a_label_falls_back_to_french_for_a_language_without_one(self, lang: str) -> None:
        assert reference.label(reference.regions()["oriental"], lang) == "L'Oriental"

    def test_items_stay_hashable_and_their_labels_read_only(self) -> None:
        fes = reference.cities()["fes"]
        assert fes in {fes}
        with pytest.raises(TypeError):
            fes.label["fr"] = "Fez"  # type: ignore[index]


Check = Callable[..., str]


class TestCheckingCodes:
    @pytest.mark.parametrize(
        ("check", "code"),
        [
            (reference.check_category, "legal_aid"),
            (reference.check_region, "souss_massa"),
            (reference.check_city, "laayoune"),
            (reference.check_population, "unaccompanied_minors"),
            (reference.check_language, "wol"),
        ],
    )
    def test_a_known_code_is_accepted_as_it_is(self, check: Check, code: str) -> None:
        assert check(code) == code

    @pytest.mark.parametrize(
        ("check", "field", "code", "detail"),
        [
            (
                reference.check_category,
                "category",
                "legal_aide",
                "unknown service category 'legal_aide'; did you mean 'legal_aid'?",
            ),
            (
                reference.check_region,
                "region",
                "souss",
                "unknown region 'souss'; did you mean 'souss_massa'?",
            ),
            (
                reference.check_city,
                "city",
                "tangier",
                "unknown city 'tangier'; did you mean 'tanger'?",
            ),
            (
                reference.check_population,
                "population",
                "unacompanied_minors",
                "unknown population 'unacompanied_minors'; did you mean 'unaccompanied_minors'?",
            ),
            (
                reference.check_language,
                "language",
                "wolof",
                "unknown language 'wolof'; did you mean 'wol'?",
            ),
        ],
    )
    def test_an_unknown_code_is_refused_naming_the_field_and_the_code_meant(
        self, check: Check, field: str, code: str, detail: str
    ) -> None:
        with pytest.raises(Invalid) as refused:
            check(code)
        assert refused.value.status == 422
        assert refused.value.field == field
        assert refused.value.detail == detail

    def test_the_caller_names_the_field_at_fault(self) -> None:
        with pytest.raises(Invalid) as refused:
            reference.check_city("agadirr", field="services[2].cities[0]")
        assert refused.value.field == "services[2].cities[0]"
        assert "did you mean 'agadir'?" in refused.value.detail

    @pytest.mark.parametrize(
        ("spelled", "meant"),
        [("Fez", "fes"), ("Béni-Mellal", "beni_mellal"), ("Marrakesh", "marrakech")],
    )
    def test_a_city_spelled_as_its_label_suggests_its_code(self, spelled: str, meant: str) -> None:
        with pytest.raises(Invalid, match=f"did you mean '{meant}'"):
            reference.check_city(spelled)

    def test_a_code_like_none_points_to_the_list_of_codes(self) -> None:
        with pytest.raises(Invalid) as refused:
            reference.check_region("qwxz")
        assert refused.value.detail == (
            "unknown region 'qwxz'; the codes are listed at /api/v1/directory/reference/regions"
        )

    def test_a_long_input_is_not_echoed_whole(self) -> None:
        with pytest.raises(Invalid) as refused:
            reference.check_category("x" * 500)
        assert len(refused.value.detail) < 150

    def test_an_unknown_city_has_no_region(self) -> None:
        with pytest.raises(Invalid) as refused:
            reference.region_of("atlantis", field="city")
        assert refused.value.field == "city"


class TestLanguageAliases:
    @pytest.mark.parametrize(
        ("given", "stored"),
        [
            ("fr", "fra"),
            ("ar", "ara"),
            ("en", "eng"),
            ("es", "spa"),
            ("wo", "wol"),
            ("bm", "bam"),
            ("ln", "lin"),
            ("ff", "ful"),
            ("FR", "fra"),
            ("Ary", "ary"),
            ("fuf", "ful"),
            ("swh", "swa"),
        ],
    )
    def test_a_language_is_stored_by_its_iso_639_3_code(self, given: str, stored: str) -> None:
        assert reference.check_language(given) == stored

    def test_a_two_letter_code_without_alias_is_refused(self) -> None:
        with pytest.raises(Invalid) as refused:
            reference.check_language("de", field="languages[1]")
        assert refused.value.field == "languages[1]"


def rewrite(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / name
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A copy of the shipped reference files, to break one rule at a time."""
    return Path(shutil.copytree(reference.DIRECTORY, tmp_path / "reference"))


class TestBrokenFilesAreRefusedAtLoad:
    def test_the_shipped_files_load(self, files: Path) -> None:
        assert reference.load(files) == reference.reference()

    def test_a_city_in_an_unknown_region_is_refused(self, files: Path) -> None:
        rewrite(files, "cities.json", lambda d: d["cities"][0].update(region="andalucia"))
        with pytest.raises(reference.ReferenceDataError, match="region 'andalucia'"):
            reference.load(files)

    def test_a_code_listed_twice_is_refused(self, files: Path) -> None:
        rewrite(files, "populations.json", lambda d: d["populations"].append(d["populations"][0]))
        with pytest.raises(reference.ReferenceDataError, match="'everyone' appears twice"):
            reference.load(files)

    def test_two_regions_with_one_iso_code_are_refused(self, files: Path) -> None:
        rewrite(files, "regions.json", lambda d: d["regions"][1].update(iso="MA-01"))
        with pytest.raises(reference.ReferenceDataError, match="'MA-01' appears twice"):
            reference.load(files)

    def test_an_empty_arabic_label_is_refused(self, files: Path) -> None:
        rewrite(files, "languages.json", lambda d: d["languages"][0]["label"].update(ar=""))
        with pytest.raises(reference.ReferenceDataError, match=r"label\.ar must be non-empty"):
            reference.load(files)

    def test_a_french_label_in_the_arabic_slot_is_refused(self, files: Path) -> None:
        rewrite(files, "regions.json", lambda d: d["regions"][0]["label"].update(ar="Tanger"))
        with pytest.raises(reference.ReferenceDataError, match="Arabic script"):
            reference.load(files)

    def test_a_missing_english_description_is_refused(self, files: Path) -> None:
        rewrite(files, "taxonomy.json", lambda d: d["categories"][0]["description"].pop("en"))
        with pytest.raises(reference.ReferenceDataError, match="description must have"):
            reference.load(files)

    def test_a_category_under_an_unknown_sector_is_refused(self, files: Path) -> None:
        rewrite(files, "taxonomy.json", lambda d: d["categories"][0].update(sector="wash"))
        with pytest.raises(reference.ReferenceDataError, match="sector 'wash'"):
            reference.load(files)

    def test_a_code_that_is_not_snake_case_is_refused(self, files: Path) -> None:
        rewrite(files, "cities.json", lambda d: d["cities"][0].update(code="Tanger"))
        with pytest.raises(reference.ReferenceDataError, match="code must match"):
            reference.load(files)

    def test_a_misspelt_key_is_refused(self, files: Path) -> None:
        rewrite(
            files, "populations.json", lambda d: d["populations"][0].update(lable={"fr": "Tous"})
        )
        with pytest.raises(reference.ReferenceDataError, match="expected the keys"):
            reference.load(files)

    def test_an_alias_to_an_unlisted_language_is_refused(self, files: Path) -> None:
        rewrite(files, "languages.json", lambda d: d["aliases"].update(de="deu"))
        with pytest.raises(reference.ReferenceDataError, match="alias 'de'"):
            reference.load(files)

    def test_a_file_that_is_not_json_is_refused(self, files: Path) -> None:
        (files / "regions.json").write_text("{", encoding="utf-8")
        with pytest.raises(reference.ReferenceDataError, match=r"regions\.json: cannot be read"):
            reference.load(files)


PREFIX = "/api/v1/directory"


def reference_app() -> FastAPI:
    app = FastAPI()
    app.include_router(reference_api.router, prefix=PREFIX)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The reference routes, called by a logged-in case worker (the guard is stood in for)."""
    app = reference_app()
    caseworker = Principal("amina", "user", "sanad", frozenset({Role.CASEWORKER}))
    app.dependency_overrides[require()] = lambda: caseworker
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


class TestReferenceRoutes:
    def test_every_reference_route_needs_a_logged_in_caller_of_any_role(self) -> None:
        table = {
            (route.method, route.path): [r.roles for r in route.requirements]
            for route in guarded_routes(reference_app().routes)
        }
        assert table == {
            ("GET", f"{PREFIX}/reference/{name}"): [frozenset()]
            for name in ("categories", "regions", "languages", "populations")
        }

    async def test_regions_come_with_their_cities_in_three_languages(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(f"{PREFIX}/reference/regions")
        assert response.status_code == 200
        regions = response.json()
        assert [region["iso"] for region in regions] == [f"MA-{n:02}" for n in range(1, 13)]
        north = regions[0]
        assert north["label"] == {
            "fr": "Tanger-Tétouan-Al Hoceïma",
            "ar": "طنجة - تطوان - الحسيمة",
            "en": "Tangier-Tetouan-Al Hoceima",
        }
        assert {"code": "tanger", "label": {"fr": "Tanger", "ar": "طنجة", "en": "Tangier"}} in (
            north["cities"]
        )

    async def test_categories_name_their_sector(self, client: httpx.AsyncClient) -> None:
        categories = (await client.get(f"{PREFIX}/reference/categories")).json()
        legal_aid = next(c for c in categories if c["code"] == "legal_aid")
        assert legal_aid["label"]["ar"] == "المساعدة القانونية"
        assert legal_aid["description"]["fr"].startswith("Conseil juridique")
        assert legal_aid["sector"]["code"] == "protection"
        assert legal_aid["sector"]["label"]["fr"] == "Protection"

    async def test_languages_show_the_codes_accepted_for_them(
        self, client: httpx.AsyncClient
    ) -> None:
        languages = (await client.get(f"{PREFIX}/reference/languages")).json()
        by_code = {language["code"]: language for language in languages}
        assert by_code["fra"]["aliases"] == ["fr"]
        assert by_code["ary"]["aliases"] == []
        assert by_code["ary"]["label"]["fr"] == "Darija (arabe marocain)"

    async def test_populations_are_listed(self, client: httpx.AsyncClient) -> None:
        populations = (await client.get(f"{PREFIX}/reference/populations")).json()
        assert [p["code"] for p in populations] == list(reference.populations())

    def test_the_lists_are_documented_in_openapi(self) -> None:
        schemas = reference_app().openapi()["components"]["schemas"]
        assert {
            "ReferenceCategory",
            "ReferenceRegion",
            "ReferenceCity",
            "ReferenceLanguage",
            "ReferencePopulation",
            "ReferenceLabels",
        } <= set(schemas)
