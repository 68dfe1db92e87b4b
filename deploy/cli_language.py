"""The language of the command line's messages: ``RELAIS_LANG`` (or ``LANG``), French by
default, through the gettext catalogues of ``shared/locales``."""

from __future__ import annotations

import os

from shared import i18n


def language() -> str:
    for value in (os.environ.get("RELAIS_LANG"), os.environ.get("LANG")):
        if value and value[:2].lower() in i18n.SUPPORTED:
            return value[:2].lower()
    return i18n.DEFAULT


def _(message: str) -> str:
    return i18n.translations(language()).gettext(message)
