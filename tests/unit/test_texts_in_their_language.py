"""A text an organisation wrote is shown in the page's language when it has one, and marked
with its own language and direction when it has not."""

from deploy.demo_network import HUB, MEMBERS
from services.dashboard import labels
from services.dashboard.rendering import TEMPLATES
from shared import i18n


def test_every_demo_service_is_described_in_french_arabic_and_english() -> None:
    services = [s for org in (HUB, *MEMBERS) for s in org.services]
    assert services
    for service in services:
        described = service.description
        assert described.fr and described.ar and described.en, service.service_id
        assert described.ar != described.fr


def test_an_arabic_page_gets_the_arabic_text() -> None:
    shown = labels.said({"fr": "Hébergement.", "ar": "إيواء."}, "ar")
    assert (shown.text, shown.lang, shown.dir) == ("إيواء.", "ar", "rtl")


def test_a_french_only_text_on_an_arabic_page_says_it_is_french_left_to_right() -> None:
    shown = labels.said({"fr": "Hébergement d'urgence."}, "ar")
    assert (shown.text, shown.lang, shown.dir) == ("Hébergement d'urgence.", "fr", "ltr")


def test_an_arabic_only_text_on_an_english_page_is_right_to_left() -> None:
    shown = labels.said({"ar": "إيواء."}, "en")
    assert (shown.lang, shown.dir) == ("ar", "rtl")


def test_no_text_is_nothing_to_show() -> None:
    assert not labels.said(None, "fr")
    assert not labels.said({"fr": ""}, "fr")


def test_a_french_text_on_an_arabic_page_is_marked_and_an_arabic_one_is_not() -> None:
    page = i18n.environment(TEMPLATES, "ar").from_string(
        '{% from "_macros.html" import said %}<p>{{ said(text) }}</p>'
    )
    french = page.render(text=labels.said({"fr": "Hébergement d'urgence."}, "ar"))
    assert french == '<p><span lang="fr" dir="ltr">Hébergement d&#39;urgence.</span></p>'
    arabic = page.render(text=labels.said({"fr": "Hébergement.", "ar": "إيواء."}, "ar"))
    assert arabic == "<p>إيواء.</p>"
