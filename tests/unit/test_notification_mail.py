"""The mail a notification becomes, read back as a mail client reads it: the same subject,
addresses, language and both bodies whichever way it was built (``email.mime`` for ASCII
addresses, the default policy for an address in UTF-8), in French and in Arabic."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from services.notifications.domain import Facts, Kind
from services.notifications.messages import Writer, email_message

FACTS = Facts(
    referral_id="0190a0a0-0000-7000-8000-000000000000",
    category="primary_health",
    urgency="emergency",
    status="received",
    from_org="sanad",
    to_org="amal",
    change="received",
    deadline="acknowledge",
    due_at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
)


def read(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("lang", ["fr", "ar"])
@pytest.mark.parametrize("to", ["focal@amal.example", "fátima@amal.example"])
def test_the_mail_reads_back_as_it_was_written(lang: str, to: str) -> None:
    writer = Writer(lang, base_url="https://amal.relais.example", timezone="Africa/Casablanca")
    rendered = writer.single(Kind.REFERRAL_RECEIVED, FACTS)
    mail = read(
        email_message(rendered, to=to, sender="Relais <relais@amal.example>", lang=lang).as_bytes()
    )

    assert mail["Subject"] == rendered.subject
    assert mail["To"] == to and mail["From"] == "Relais <relais@amal.example>"
    assert mail["Content-Language"] == lang and mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith("@amal.example>")
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    # (the default policy ends a body with a line break of its own)
    assert plain.get_content().rstrip("\n") == rendered.text.rstrip("\n")
    assert html.get_content().rstrip("\n") == rendered.html.rstrip("\n")
