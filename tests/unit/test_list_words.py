"""Lists of names read the way the page's language lists them."""

from services.dashboard import labels


def test_an_arabic_list_has_no_latin_comma() -> None:
    shown = labels.joined(["الصحة", "السكن", "التعليم"], "ar")
    assert "," not in shown
    assert shown == "الصحة والسكن والتعليم"


def test_a_french_list_ends_with_et() -> None:
    assert labels.joined(["Santé", "Logement", "Éducation"], "fr") == "Santé, Logement et Éducation"


def test_an_english_list_ends_with_and() -> None:
    assert labels.joined(["Health", "Housing"], "en") == "Health and Housing"


def test_nothing_to_list_is_an_empty_phrase() -> None:
    assert labels.joined(["", ""], "ar") == ""
