"""The languages Relais speaks: gettext catalogues read at run time, the language of a request,
its writing direction, and Jinja2 environments that translate templates.

French is the network's working language and the default; Arabic (written right to left) and
English follow. Source strings (msgids) are English; every catalogue translates every one of
them, French included, and a unit test refuses an empty translation.

The catalogues are the ``.po`` files in ``shared/locales/<lang>/LC_MESSAGES/relais.po``. They
are compiled in memory on first use, so there is no build step and no ``.mo`` file to forget.

After adding or changing a marked string (``_("...")`` or ``N_("...")`` in Python, ``{{ _("...")
}}`` or ``{% trans %}`` in a template), from the repository's root::

    .venv/bin/pybabel extract -F shared/locales/babel.cfg -o build/relais.pot .
    .venv/bin/pybabel update -i build/relais.pot -d shared/locales -D relais --ignore-obsolete

then fill in every new ``msgstr`` of the three ``.po`` files (and clear the ``fuzzy`` flags
after checking them: fuzzy translations are not used).
"""

from __future__ import annotations

import functools
import re
from io import BytesIO
from pathlib import Path

import jinja2
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

SUPPORTED = ("fr", "ar", "en")
DEFAULT = "fr"
DOMAIN = "relais"
LOCALES = Path(__file__).parent / "locales"
# A browser sends at most a few dozen languages; anything longer is not worth parsing.
_ACCEPT_LANGUAGE_MAX = 1000
_LANGUAGE_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}|\*)(?:-[A-Za-z0-9]{1,8})*\s*$")
_QUALITY = re.compile(r"^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$")


def N_(message: str) -> str:
    """Mark ``message`` for extraction, to be translated later where the language is known."""
    return message


def catalogue_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _checked(lang: str) -> str:
    if lang not in SUPPORTED:
        raise ValueError(f"unsupported language {lang!r}; expected one of {SUPPORTED}")
    return lang


@functools.cache
def translations(lang: str) -> Translations:
    """The translations of ``lang``, compiled from its ``.po`` file once per process."""
    with catalogue_path(_checked(lang)).open("rb") as po:
        catalogue = read_po(po, locale=lang, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def direction(lang: str) -> str:
    """``"rtl"`` or ``"ltr"``: the writing direction of ``lang``, from the CLDR data."""
    return Locale.parse(_checked(lang)).text_direction


def language_name(lang: str) -> str:
    """The name of ``lang`` in ``lang`` itself ("Français", "العربية", "English").

    A language switcher shows each choice in its own language: a reader who cannot read the
    current page can still find theirs.
    """
    name = Locale.parse(_checked(lang)).get_display_name(lang) or lang
    return name[:1].upper() + name[1:]


def negotiate(accept_language: str | None, cookie: str | None) -> str:
    """The language to answer in: the one chosen on the pages (the ``cookie``) if it is
    supported, else the browser's most preferred supported one, else French."""
    if cookie is not None and cookie in SUPPORTED:
        return cookie
    for lang in _preferred(accept_language or ""):
        if lang in SUPPORTED:
            return lang
    return DEFAULT


def _preferred(accept_language: str) -> list[str]:
    """The primary language subtags of an ``Accept-Language`` header (RFC 9110 §12.5.4), most
    preferred first, without those refused with ``q=0`` and without ``*``; malformed parts
    are skipped rather than failing the request."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language[:_ACCEPT_LANGUAGE_MAX].split(",")):
        tag, *parameters = part.split(";")
        match = _LANGUAGE_RANGE.match(tag)
        if match is None or match.group(1) == "*":
            continue
        quality = 1.0
        for parameter in parameters:
            found = _QUALITY.match(parameter)
            if found is not None:
                quality = float(found.group(1))
        if 0 < quality <= 1:
            ranked.append((-quality, position, match.group(1).lower()))
    return [lang for _, _, lang in sorted(ranked)]


@functools.cache
def environment(templates: Path, lang: str) -> jinja2.Environment:
    """A Jinja2 environment rendering the templates in ``templates`` in ``lang``.

    One environment per language rather than one whose translations are swapped per request:
    concurrent requests in different languages share nothing that changes. Its globals
    ``lang`` and ``text_direction`` fill ``<html lang dir>``.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails loudly, not blank
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # newstyle: values put into a message (``%(name)s``) are escaped like any other output.
    # The i18n extension adds this method at run time, out of the type checker's sight.
    install = env.install_gettext_translations  # type: ignore[attr-defined]
    install(translations(lang), newstyle=True)
    env.globals.update(lang=lang, text_direction=direction(lang))
    return env
