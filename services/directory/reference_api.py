"""Directory reference data over HTTP: the codes a client may send (service categories,
regions and their cities, languages, populations) with their labels in French, Arabic and
English, so that forms and member systems need no copy of their own."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from services.directory import reference
from shared.auth import Principal, require

router = APIRouter()
Anyone = Annotated[Principal, Depends(require())]


class ReferenceLabels(BaseModel):
    """One text in each of the network's languages."""

    fr: str
    ar: str
    en: str


class ReferenceSector(BaseModel):
    code: str
    label: ReferenceLabels


class ReferenceCategory(BaseModel):
    code: str
    label: ReferenceLabels
    description: ReferenceLabels
    sector: ReferenceSector = Field(
        description="the humanitarian sector (cluster) it is counted under in 3W reports"
    )


class ReferenceCity(BaseModel):
    code: str
    label: ReferenceLabels


class ReferenceRegion(BaseModel):
    code: str
    iso: str = Field(description="ISO 3166-2 code, MA-01 to MA-12")
    label: ReferenceLabels
    cities: list[ReferenceCity]


class ReferenceLanguage(BaseModel):
    code: str = Field(description="ISO 639-3 code")
    label: ReferenceLabels
    aliases: list[str] = Field(
        description="other codes accepted on input for this language (ISO 639-1, varieties)"
    )


class ReferencePopulation(BaseModel):
    code: str
    label: ReferenceLabels


@router.get("/reference/categories", summary="Service categories, with their sectors")
async def list_categories(_: Anyone) -> list[ReferenceCategory]:
    return _categories()


@router.get("/reference/regions", summary="Morocco's regions, each with its cities")
async def list_regions(_: Anyone) -> list[ReferenceRegion]:
    return _regions()


@router.get("/reference/languages", summary="Languages, by ISO 639-3 code")
async def list_languages(_: Anyone) -> list[ReferenceLanguage]:
    return _languages()


@router.get("/reference/populations", summary="Populations a service can be for")
async def list_populations(_: Anyone) -> list[ReferencePopulation]:
    return _populations()


# The data never changes while a node runs, so each answer is built once.


def _labels(texts: Mapping[str, str]) -> ReferenceLabels:
    return ReferenceLabels.model_validate(dict(texts))


@functools.cache
def _categories() -> list[ReferenceCategory]:
    sectors = {
        sector.code: ReferenceSector(code=sector.code, label=_labels(sector.label))
        for sector in reference.sectors().values()
    }
    return [
        ReferenceCategory(
            code=category.code,
            label=_labels(category.label),
            description=_labels(category.description),
            sector=sectors[category.sector],
        )
        for category in reference.categories().values()
    ]


@functools.cache
def _regions() -> list[ReferenceRegion]:
    return [
        ReferenceRegion(
            code=region.code,
            iso=region.iso,
            label=_labels(region.label),
            cities=[
                ReferenceCity(code=city.code, label=_labels(city.label))
                for city in reference.cities_in(region.code)
            ],
        )
        for region in reference.regions().values()
    ]


@functools.cache
def _languages() -> list[ReferenceLanguage]:
    aliases = reference.language_aliases()
    return [
        ReferenceLanguage(
            code=language.code,
            label=_labels(language.label),
            aliases=[alias for alias, code in aliases.items() if code == language.code],
        )
        for language in reference.languages().values()
    ]


@functools.cache
def _populations() -> list[ReferencePopulation]:
    return [
        ReferencePopulation(code=population.code, label=_labels(population.label))
        for population in reference.populations().values()
    ]
