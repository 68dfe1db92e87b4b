"""Page sessions: a signed cookie that cannot be forged, carried over to another node, or
kept past its age, and the CSRF token and session id that come with it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi import Response
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from shared.auth.sessions import (
    SESSION_MAX_AGE,
    Session,
    SessionSigner,
    cookie_name,
    csrf_matches,
    forget_session_cookie,
    new_session,
    set_session_cookie,
)
from shared.settings import NodeSettings

SECRET = "a secret of the node, long enough"


def settings(*, demo: bool) -> NodeSettings:
    return NodeSettings(
        node_id="sanad",
        org="sanad",
        nats_url="nats://127.0.0.1:4222",
        database_url="postgresql://nowhere/relais",
        secret_key=SECRET,
        demo=demo,
    )


class TestSignedCookie:
    def test_a_signed_session_reads_back(self) -> None:
        signer = SessionSigner(SECRET, "sanad")
        session = new_session("amina")
        assert signer.load(signer.sign(session)) == session

    def test_a_tampered_cookie_is_refused(self) -> None:
        signer = SessionSigner(SECRET, "sanad")
        value = signer.sign(Session("amina", "csrf", "id"))
        _, signature = value.split(".", 1)
        admin_payload = signer.sign(Session("admin", "csrf", "id")).split(".", 1)[0]
        assert signer.load(f"{admin_payload}.{signature}") is None
        assert signer.load(value[:-2]) is None

    def test_a_cookie_signed_with_another_key_is_refused(self) -> None:
        value = SessionSigner("someone else's secret key", "sanad").sign(new_session("admin"))
        assert SessionSigner(SECRET, "sanad").load(value) is None

    def test_a_cookie_of_another_node_sharing_the_secret_is_refused(self) -> None:
        # The demo's nodes share a host and a secret: a hub session must not open a member node.
        value = SessionSigner(SECRET, "hub").sign(new_session("admin"))
        assert SessionSigner(SECRET, "sanad").load(value) is None

    def test_a_session_older_than_twelve_hours_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        signer = SessionSigner(SECRET, "sanad")
        signed_at = int(time.time()) - int(SESSION_MAX_AGE.total_seconds()) - 5
        with monkeypatch.context() as patch:
            patch.setattr(TimestampSigner, "get_timestamp", lambda self: signed_at)
            stale = signer.sign(new_session("amina"))
        assert signer.load(stale) is None
        assert signer.load(stale, max_age=SESSION_MAX_AGE + timedelta(minutes=1)) is not None


class TestCsrf:
    def test_the_sessions_own_token_matches(self) -> None:
        session = new_session("amina")
        assert csrf_matches(session, session.csrf)

    def test_another_or_no_token_does_not_match(self) -> None:
        session = new_session("amina")
        assert not csrf_matches(session, new_session("amina").csrf)
        assert not csrf_matches(session, "")
        assert not csrf_matches(session, None)

    def test_sessions_get_fresh_tokens(self) -> None:
        assert new_session("amina").csrf != new_session("amina").csrf

    def test_the_token_stays_out_of_reprs(self) -> None:
        session = Session("amina", "the-csrf-token", "the-session-id")
        assert "the-csrf-token" not in repr(session)
        assert "the-session-id" not in repr(session)

    def test_sessions_get_fresh_ids(self) -> None:
        assert new_session("amina").secret != new_session("amina").secret

    def test_a_cookie_without_a_session_id_is_refused(self) -> None:
        # Signed by this node before sessions were kept server-side: it names no session.
        signer = SessionSigner(SECRET, "sanad")
        old = URLSafeTimedSerializer(SECRET, salt="relais-session:sanad").dumps(
            {"u": "amina", "c": "csrf"}
        )
        assert signer.load(old) is None


class TestCookieAttributes:
    def set_cookie_header(self, *, demo: bool) -> str:
        response = Response()
        session = new_session("amina")
        set_session_cookie(response, session, settings(demo=demo))
        header = response.headers["set-cookie"]
        # The token and the id are inside the signed value, not readable as is.
        assert session.csrf not in header and session.secret not in header
        return header

    def test_the_session_cookie_is_http_only_lax_and_secure(self) -> None:
        header = self.set_cookie_header(demo=False)
        assert header.startswith(f"{cookie_name('sanad')}=")
        lowered = header.lower()
        assert "httponly" in lowered
        assert "samesite=lax" in lowered
        assert "secure" in lowered
        assert "path=/" in lowered

    def test_the_demo_over_plain_http_drops_only_the_secure_flag(self) -> None:
        lowered = self.set_cookie_header(demo=True).lower()
        assert "secure" not in lowered
        assert "httponly" in lowered and "samesite=lax" in lowered

    def test_logging_out_expires_the_cookie(self) -> None:
        response = Response()
        forget_session_cookie(response, settings(demo=False))
        header = response.headers["set-cookie"]
        assert header.startswith(f"{cookie_name('sanad')}=")
        assert "max-age=0" in header.lower()
