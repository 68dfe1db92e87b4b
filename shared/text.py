"""Messages of the command line and of a node's start, in the operator's language
(``RELAIS_LANG``, else ``LANG``, else French), from the gettext catalogues."""

from __future__ import annotations

import os

from shared import i18n


def language() -> str:
    for value in (os.environ.get("RELAIS_LANG"), os.environ.get("LANG")):
        if value and value[:2].lower() in i18n.SUPPORTED:
            return value[:2].lower()
    return i18n.DEFAULT


def gettext(message: str) -> str:
    return i18n.translations(language()).gettext(message)
