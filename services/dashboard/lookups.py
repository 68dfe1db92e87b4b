"""Names the pages show for codes: organisations, service categories, regions and cities,
languages and populations, read from the directory's API in the reader's language.

A page asks only for what it shows; each list is read at most once per page (reference data
once per app, see ``node_api``). A node without the directory (a test app) still renders,
showing the codes themselves.
"""

from __future__ import annotations

from typing import Any

from services.dashboard.labels import localised
from services.dashboard.node_api import ApiRefused, NodeApi
from shared.errors import NotFound

DIRECTORY = "/api/v1/directory"


class Lookups:
    def __init__(self, api: NodeApi, lang: str) -> None:
        self.api = api
        self.lang = lang
        self._lists: dict[str, list[dict[str, Any]]] = {}

    async def _list(self, path: str) -> list[dict[str, Any]]:
        if path not in self._lists:
            try:
                found = await self.api.get(path)
            except (NotFound, ApiRefused):
                found = []
            self._lists[path] = [item for item in found or [] if isinstance(item, dict)]
        return self._lists[path]

    async def organisations(self) -> list[dict[str, Any]]:
        return await self._list(f"{DIRECTORY}/organisations")

    async def org_names(self) -> dict[str, str]:
        return {
            o["org_id"]: localised(o.get("name"), self.lang, o["org_id"])
            for o in await self.organisations()
        }

    async def categories(self) -> list[tuple[str, str]]:
        """(code, label) of every service category, in the taxonomy's order."""
        return [
            (c["code"], localised(c.get("label"), self.lang, c["code"]))
            for c in await self._list(f"{DIRECTORY}/reference/categories")
        ]

    async def regions(self) -> list[dict[str, Any]]:
        return await self._list(f"{DIRECTORY}/reference/regions")

    async def region_names(self) -> dict[str, str]:
        return {
            r["code"]: localised(r.get("label"), self.lang, r["code"]) for r in await self.regions()
        }

    async def city_names(self) -> dict[str, str]:
        return {
            c["code"]: localised(c.get("label"), self.lang, c["code"])
            for r in await self.regions()
            for c in r.get("cities", [])
        }

    async def region_of_city(self) -> dict[str, str]:
        return {c["code"]: r["code"] for r in await self.regions() for c in r.get("cities", [])}

    async def languages(self) -> list[tuple[str, str]]:
        return [
            (lang["code"], localised(lang.get("label"), self.lang, lang["code"]))
            for lang in await self._list(f"{DIRECTORY}/reference/languages")
        ]

    async def language_names(self) -> dict[str, str]:
        names = {}
        for lang in await self._list(f"{DIRECTORY}/reference/languages"):
            label = localised(lang.get("label"), self.lang, lang["code"])
            for code in (lang["code"], *lang.get("aliases", [])):
                names[code] = label
        return names

    async def populations(self) -> list[tuple[str, str]]:
        return [
            (p["code"], localised(p.get("label"), self.lang, p["code"]))
            for p in await self._list(f"{DIRECTORY}/reference/populations")
        ]

    async def namer(self) -> dict[str, dict[str, str]]:
        """Every name table at once, for templates: ``names.org[code]``..."""
        return {
            "org": await self.org_names(),
            "category": dict(await self.categories()),
            "region": await self.region_names(),
            "city": await self.city_names(),
            "language": await self.language_names(),
            "population": dict(await self.populations()),
        }
