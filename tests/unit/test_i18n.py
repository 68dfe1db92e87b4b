"""The languages of the pages: which one a visitor gets, which way it is written, and that every
string the code marks is translated in French, Arabic and English."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from shared import i18n

ROOT = Path(i18n.__file__).parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def catalogue(lang: str) -> Catalog:
    with i18n.catalogue_path(lang).open("rb") as po:
        return read_po(po, locale=lang, domain=i18n.DOMAIN)


@functools.cache
def marked_strings() -> frozenset[str]:
    """Every message the code and templates mark for translation, found as ``pybabel extract``
    finds them (same mapping file)."""
    with (i18n.LOCALES / "babel.cfg").open() as cfg:
        # Babel's own reader of the mapping file, so that the test reads it as pybabel does.
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(ROOT, method_map, options_map):
        found.update([message] if isinstance(message, str) else message)
    return frozenset(found)


class TestChoosingTheLanguage:
    def test_french_when_nothing_says_otherwise(self) -> None:
        assert i18n.negotiate(None, None) == "fr"
        assert i18n.negotiate("", "") == "fr"

    def test_the_language_chosen_on_the_pages_wins_over_the_browsers(self) -> None:
        assert i18n.negotiate("en-GB,en;q=0.9", "ar") == "ar"

    def test_an_unknown_chosen_language_is_ignored(self) -> None:
        assert i18n.negotiate("en", "xx") == "en"
        assert i18n.negotiate(None, "xx") == "fr"

    def test_the_browsers_most_preferred_supported_language_is_used(self) -> None:
        assert i18n.negotiate("en;q=0.5, ar-MA;q=0.9", None) == "ar"
        assert i18n.negotiate("de-DE, es;q=0.9, en;q=0.8", None) == "en"

    def test_equally_preferred_languages_keep_the_browsers_order(self) -> None:
        assert i18n.negotiate("en, ar", None) == "en"
        assert i18n.negotiate("ar, en", None) == "ar"

    def test_regional_variants_count_as_their_language(self) -> None:
        assert i18n.negotiate("AR-ma", None) == "ar"
        assert i18n.negotiate("en-US", None) == "en"

    def test_a_refused_language_is_never_chosen(self) -> None:
        assert i18n.negotiate("en;q=0, *;q=0.5", None) == "fr"

    def test_a_malformed_header_is_read_as_far_as_it_makes_sense(self) -> None:
        assert i18n.negotiate("@@@, ;;, en-, ar", None) == "ar"
        assert i18n.negotiate("x" * 10_000, None) == "fr"


class TestDirection:
    def test_arabic_is_written_right_to_left(self) -> None:
        assert i18n.direction("ar") == "rtl"

    @pytest.mark.parametrize("lang", ["fr", "en"])
    def test_french_and_english_are_written_left_to_right(self, lang: str) -> None:
        assert i18n.direction(lang) == "ltr"

    def test_an_unsupported_language_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unsupported language"):
            i18n.direction("de")

    def test_each_language_is_named_in_itself(self) -> None:
        names = [i18n.language_name(lang) for lang in i18n.SUPPORTED]
        assert names == ["Français", "العربية", "English"]


class TestCatalogues:
    @pytest.mark.parametrize("lang", i18n.SUPPORTED)
    def test_every_message_is_translated(self, lang: str) -> None:
        untranslated = [
            message.id
            for message in catalogue(lang)
            if message.id and (not message.string or message.fuzzy)
        ]
        assert untranslated == [], f"{lang}: empty or fuzzy translations"

    @pytest.mark.parametrize("lang", i18n.SUPPORTED)
    def test_every_string_the_code_marks_is_in_the_catalogue(self, lang: str) -> None:
        known = {message.id for message in catalogue(lang) if message.id}
        missing = marked_strings() - known
        assert not missing, f"{lang}: run the pybabel commands of shared/i18n.py: {missing}"

    @pytest.mark.parametrize("lang", i18n.SUPPORTED)
    def test_no_catalogue_keeps_a_string_the_code_dropped(self, lang: str) -> None:
        known = {message.id for message in catalogue(lang) if message.id}
        assert not known - marked_strings(), f"{lang}: obsolete messages"

    @pytest.mark.parametrize("lang", i18n.SUPPORTED)
    def test_translations_keep_the_placeholders_of_their_message(self, lang: str) -> None:
        changed = [
            message.id
            for message in catalogue(lang)
            if isinstance(message.id, str)
            and isinstance(message.string, str)
            and set(PLACEHOLDER.findall(message.id)) != set(PLACEHOLDER.findall(message.string))
        ]
        assert changed == []

    def test_pages_are_translated_from_the_catalogues(self) -> None:
        assert i18n.translations("fr").gettext("Log in") == "Se connecter"
        assert i18n.translations("ar").gettext("Log in") == "تسجيل الدخول"
        assert i18n.translations("en").gettext("Log in") == "Log in"


class TestTemplates:
    def test_a_template_renders_in_its_language_and_direction(self, tmp_path: Path) -> None:
        (tmp_path / "page.html").write_text(
            '<html lang="{{ lang }}" dir="{{ text_direction }}">{{ _("Password") }}</html>',
            encoding="utf-8",
        )
        page = i18n.environment(tmp_path, "ar").get_template("page.html").render()
        assert page == '<html lang="ar" dir="rtl">كلمة المرور</html>'

    def test_values_put_into_a_message_are_escaped(self, tmp_path: Path) -> None:
        (tmp_path / "page.html").write_text(
            '{{ _("Welcome, %(name)s", name=name) }}', encoding="utf-8"
        )
        env = i18n.environment(tmp_path, "fr")
        page = env.get_template("page.html").render(name="<script>x</script>")
        assert page == "Bienvenue, &lt;script&gt;x&lt;/script&gt;"
