"""The directory's reference data: service categories (and the humanitarian sector each is
counted under), Morocco's regions and cities, languages and the populations a service is for.

The data lives in the JSON files of ``reference/`` beside this module, labelled in French,
Arabic and English. It is read and checked once, by ``reference()`` (call it at start-up to
fail fast); a file that breaks a rule raises ``ReferenceDataError`` rather than serving half a
list. Domain code checks the codes a client sends with the ``check_*`` functions, which raise
``Invalid`` naming the field and, where one is close, the code the client probably meant.

Pure: this module reads its own package files and imports no I/O package.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from shared.errors import Invalid

DIRECTORY = Path(__file__).parent / "reference"
LANGS = ("fr", "ar", "en")
DEFAULT_LANG = "fr"
# Where a client finds the valid codes; named in the detail of an unknown-code error.
LISTED_AT = "/api/v1/directory/reference"

# The same shape as the contracts' ``Code`` pattern, so every code here can be sent in an event.
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
_ISO_639_3 = re.compile(r"^[a-z]{3}$")
_ISO_639_ALIAS = re.compile(r"^[a-z]{2,3}$")
_ISO_3166_2_MA = re.compile(r"^MA-[0-9]{2}$")
_ARABIC_LETTER = re.compile(r"[\u0600-\u06ff\u0750-\u077f]")
# Echoing a whole pasted paragraph back in an error helps nobody.
_ECHO_MAX = 40


class ReferenceDataError(Exception):
    """A reference file breaks a rule: a deployment error, raised when the data is first read."""


class Labelled(Protocol):
    """Anything with labels keyed by language (``fr``, ``ar``, ``en``)."""

    @property
    def code(self) -> str: ...

    @property
    def label(self) -> Mapping[str, str]: ...


# Labels are read-only mappings, so an item cannot be hashed by them: hash=False keeps the
# frozen items hashable by their other fields.


@dataclass(frozen=True)
class Sector:
    """A humanitarian sector (cluster), as 3W "who does what where" reports name it."""

    code: str
    label: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class Category:
    """A kind of service an organisation offers, and the sector it is counted under."""

    code: str
    label: Mapping[str, str] = field(hash=False)
    description: Mapping[str, str] = field(hash=False)
    sector: str


@dataclass(frozen=True)
class Region:
    """One of Morocco's 12 regions, with its ISO 3166-2 code (``MA-01`` … ``MA-12``)."""

    code: str
    iso: str
    label: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class City:
    code: str
    region: str
    label: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class Language:
    """A language by its ISO 639-3 code."""

    code: str
    label: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class Population:
    """A group of people a service is for (its eligibility), never a person's profile."""

    code: str
    label: Mapping[str, str] = field(hash=False)


_Item = TypeVar("_Item", bound=Labelled)


@dataclass(frozen=True)
class ReferenceData:
    """Every list, keyed by code in the order of its file, and the accepted language aliases."""

    sectors: Mapping[str, Sector]
    categories: Mapping[str, Category]
    regions: Mapping[str, Region]
    cities: Mapping[str, City]
    languages: Mapping[str, Language]
    aliases: Mapping[str, str]
    populations: Mapping[str, Population]


def load(directory: Path = DIRECTORY) -> ReferenceData:
    """Read and check the reference files of ``directory``; ``ReferenceDataError`` if broken."""
    taxonomy = _File.read(directory, "taxonomy.json", {"sectors", "categories"})
    sectors = _keyed(
        Sector(code, _labels(entry, "label", where))
        for code, entry, where in taxonomy.entries("sectors", {"label"})
    )
    categories = _keyed(
        Category(
            code,
            _labels(entry, "label", where),
            _labels(entry, "description", where),
            _known(entry["sector"], sectors, f"{where}: sector"),
        )
        for code, entry, where in taxonomy.entries("categories", {"label", "description", "sector"})
    )
    regions = _keyed(
        Region(code, _iso_region(entry["iso"], where), _labels(entry, "label", where))
        for code, entry, where in _File.read(directory, "regions.json", {"regions"}).entries(
            "regions", {"iso", "label"}
        )
    )
    _unique((region.iso for region in regions.values()), "regions.json: ISO 3166-2 code")
    cities = _keyed(
        City(
            code,
            _known(entry["region"], regions, f"{where}: region"),
            _labels(entry, "label", where),
        )
        for code, entry, where in _File.read(directory, "cities.json", {"cities"}).entries(
            "cities", {"region", "label"}
        )
    )
    spoken = _File.read(directory, "languages.json", {"languages", "aliases"})
    languages = _keyed(
        Language(code, _labels(entry, "label", where))
        for code, entry, where in spoken.entries("languages", {"label"}, pattern=_ISO_639_3)
    )
    populations = _keyed(
        Population(code, _labels(entry, "label", where))
        for code, entry, where in _File.read(
            directory, "populations.json", {"populations"}
        ).entries("populations", {"label"})
    )
    return ReferenceData(
        sectors=sectors,
        categories=categories,
        regions=regions,
        cities=cities,
        languages=languages,
        aliases=_aliases(spoken.content.get("aliases", {}), languages),
        populations=populations,
    )


@functools.cache
def reference() -> ReferenceData:
    """The reference data shipped with Relais, read once."""
    return load()


def sectors() -> Mapping[str, Sector]:
    return reference().sectors


def categories() -> Mapping[str, Category]:
    return reference().categories


def regions() -> Mapping[str, Region]:
    return reference().regions


def cities() -> Mapping[str, City]:
    return reference().cities


def languages() -> Mapping[str, Language]:
    return reference().languages


def language_aliases() -> Mapping[str, str]:
    """Other codes accepted for a language (ISO 639-1, folded varieties) → its ISO 639-3 code."""
    return reference().aliases


def populations() -> Mapping[str, Population]:
    return reference().populations


def check_category(code: str, field: str = "category") -> str:
    """``code`` if it is a service category; ``Invalid`` naming ``field`` if not."""
    return _check(code, categories(), field, "service category", "categories")


def check_region(code: str, field: str = "region") -> str:
    return _check(code, regions(), field, "region", "regions")


def check_city(code: str, field: str = "city") -> str:
    return _check(code, cities(), field, "city", "regions")


def check_population(code: str, field: str = "population") -> str:
    return _check(code, populations(), field, "population", "populations")


def check_language(code: str, field: str = "language") -> str:
    """The ISO 639-3 code of ``code``, which may also be an alias (``fr`` gives ``fra``)."""
    # ISO 639 codes are case-insensitive (BCP 47 too): "FR" is as French as "fr".
    key = code.lower()
    if key in languages():
        return key
    if key in language_aliases():
        return language_aliases()[key]
    return _check(code, languages(), field, "language", "languages", language_aliases())


def region_of(city: str, field: str = "city") -> str:
    """The code of the region ``city`` is in."""
    return cities()[check_city(city, field)].region


def cities_in(region: str, field: str = "region") -> list[City]:
    """The cities of ``region``, in the order of the reference file."""
    code = check_region(region, field)
    return [city for city in cities().values() if city.region == code]


def in_language(texts: Mapping[str, str], lang: str) -> str:
    """``texts`` in ``lang``, or in French (the network's working language) if there is none."""
    return texts.get(lang) or texts[DEFAULT_LANG]


def label(item: Labelled, lang: str) -> str:
    """The label of ``item`` in ``lang``, falling back to French."""
    return in_language(item.label, lang)


def _check(
    code: str,
    known: Mapping[str, Labelled],
    field: str,
    noun: str,
    listing: str,
    aliases: Mapping[str, str] | None = None,
) -> str:
    if code in known:
        return code
    shown = code if len(code) <= _ECHO_MAX else code[:_ECHO_MAX] + "…"
    guess = _closest(code, known, aliases or {})
    hint = (
        f"did you mean {guess!r}?"
        if guess is not None
        else f"the codes are listed at {LISTED_AT}/{listing}"
    )
    raise Invalid(f"unknown {noun} {shown!r}; {hint}", field=field)


def _closest(code: str, known: Mapping[str, Labelled], aliases: Mapping[str, str]) -> str | None:
    """The code whose spelling is nearest to ``code``: its code, an alias, or a label (so that
    "Tangier" or "Béni-Mellal" lead to ``tanger`` and ``beni_mellal``)."""
    spellings: dict[str, str] = {}
    for item in known.values():
        for lang in ("fr", "en"):
            spellings.setdefault(_folded(item.label[lang]), item.code)
    spellings.update(aliases)
    spellings.update({known_code: known_code for known_code in known})
    matches = difflib.get_close_matches(_folded(code), spellings, n=1, cutoff=0.6)
    return spellings[matches[0]] if matches else None


def _folded(text: str) -> str:
    """``text`` in lower-case ASCII with ``_`` between words: "Béni Mellal" → "beni_mellal"."""
    bare = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", bare.lower()).strip("_")


# Loading and checking the files.


@dataclass(frozen=True)
class _File:
    """One reference file's JSON object, and its name for error messages."""

    name: str
    content: dict[str, Any]

    @classmethod
    def read(cls, directory: Path, name: str, lists: set[str]) -> _File:
        try:
            content = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ReferenceDataError(f"{name}: cannot be read: {error}") from error
        if not isinstance(content, dict):
            raise ReferenceDataError(f"{name}: expected a JSON object")
        # "source" says where the data comes from; anything else unexpected is probably a typo.
        unexpected = set(content) - lists - {"source"}
        if unexpected:
            raise ReferenceDataError(f"{name}: unexpected keys {sorted(unexpected)}")
        return cls(name, content)

    def entries(
        self, key: str, fields: set[str], *, pattern: re.Pattern[str] = _CODE
    ) -> list[tuple[str, dict[str, Any], str]]:
        """Each entry of the list ``key`` as (code, entry, where-for-errors), its keys checked."""
        entries = self.content.get(key)
        if not isinstance(entries, list) or not entries:
            raise ReferenceDataError(f"{self.name}: {key!r} must be a non-empty list")
        checked = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ReferenceDataError(f"{self.name}: {key}[{position}] must be an object")
            code = entry.get("code")
            where = f"{self.name}: {key}[{position}] {code!r}"
            if not isinstance(code, str) or not pattern.fullmatch(code):
                raise ReferenceDataError(f"{where}: code must match {pattern.pattern}")
            if set(entry) != fields | {"code"}:
                raise ReferenceDataError(f"{where}: expected the keys {sorted(fields | {'code'})}")
            checked.append((code, entry, where))
        _unique((code for code, _, _ in checked), f"{self.name}: {key} code")
        return checked


def _labels(entry: dict[str, Any], key: str, where: str) -> Mapping[str, str]:
    texts = entry[key]
    if not isinstance(texts, dict) or set(texts) != set(LANGS):
        raise ReferenceDataError(f"{where}: {key} must have exactly the languages {LANGS}")
    for lang, text in texts.items():
        if not isinstance(text, str) or not text.strip() or text != text.strip():
            raise ReferenceDataError(f"{where}: {key}.{lang} must be non-empty, unpadded text")
        # Catches a French label pasted into the Arabic slot, and the reverse.
        if (lang == "ar") != bool(_ARABIC_LETTER.search(text)):
            script = "Arabic" if lang == "ar" else "Latin"
            raise ReferenceDataError(f"{where}: {key}.{lang} must be written in {script} script")
    return MappingProxyType({lang: texts[lang] for lang in LANGS})


def _known(code: Any, known: Mapping[str, object], where: str) -> str:
    if not isinstance(code, str) or code not in known:
        raise ReferenceDataError(f"{where} {code!r} is not one of {list(known)}")
    return code


def _iso_region(iso: Any, where: str) -> str:
    if not isinstance(iso, str) or not _ISO_3166_2_MA.fullmatch(iso):
        raise ReferenceDataError(f"{where}: iso must be an ISO 3166-2:MA code such as MA-04")
    return iso


def _aliases(aliases: Any, languages: Mapping[str, Language]) -> Mapping[str, str]:
    if not isinstance(aliases, dict):
        raise ReferenceDataError("languages.json: 'aliases' must be an object")
    for alias, code in aliases.items():
        where = f"languages.json: alias {alias!r}"
        if not _ISO_639_ALIAS.fullmatch(alias) or alias in languages:
            raise ReferenceDataError(f"{where}: must be a 2- or 3-letter code not listed itself")
        _known(code, languages, f"{where}: language")
    return MappingProxyType(dict(aliases))


def _keyed(items: Iterable[_Item]) -> Mapping[str, _Item]:
    """``items`` keyed by code; codes are already known to be unique."""
    return MappingProxyType({item.code: item for item in items})


def _unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ReferenceDataError(f"{what} {value!r} appears twice")
        seen.add(value)
