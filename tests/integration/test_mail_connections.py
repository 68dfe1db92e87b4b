"""The notifications' mailer keeps its SMTP connections open between mails (a real aiosmtpd
server): one connection carries a run of mails, and a server that dropped a kept connection,
or refused one mail, loses no mail after it."""

from __future__ import annotations

import asyncio
import threading
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from deploy.ports import free_ports
from services.notifications.channels import Mailer, SendFailed
from services.notifications.settings import NotificationSettings


class Counting:
    """Keeps the subjects it accepts and counts the sessions (EHLO) it was opened for."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subjects: list[str] = []
        self.sessions = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = (envelope.original_content or b"").decode()
        subject = next(
            line.removeprefix("Subject: ")
            for line in content.splitlines()
            if line.startswith("Subject: ")
        )
        with self.lock:
            self.subjects.append(subject)
        return "250 OK"


def mail(subject: str, to: str = "focal@amal.example") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "relais@amal.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Une nouvelle orientation vous attend.")
    return message


@pytest.fixture
def smtp_port() -> int:
    return free_ports(1)[0]


def server(handler: Counting, port: int) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


async def test_a_run_of_mails_goes_over_one_kept_connection(smtp_port: int) -> None:
    handler = Counting()
    controller = server(handler, smtp_port)
    mailer = Mailer(NotificationSettings(smtp_host="127.0.0.1", smtp_port=smtp_port))
    try:
        for n in range(10):
            await mailer.send(mail(f"mail {n}"))
    finally:
        mailer.close()
        controller.stop()
    assert handler.subjects == [f"mail {n}" for n in range(10)]
    assert handler.sessions == 1


async def test_mails_sent_together_share_a_few_connections(smtp_port: int) -> None:
    handler = Counting()
    controller = server(handler, smtp_port)
    mailer = Mailer(NotificationSettings(smtp_host="127.0.0.1", smtp_port=smtp_port), connections=3)
    try:
        await asyncio.gather(*(mailer.send(mail(f"mail {n}")) for n in range(30)))
    finally:
        mailer.close()
        controller.stop()
    assert sorted(handler.subjects) == sorted(f"mail {n}" for n in range(30))
    assert 1 <= handler.sessions <= 3


async def test_a_connection_the_server_dropped_is_opened_again_for_the_next_mail(
    smtp_port: int,
) -> None:
    handler = Counting()
    controller = server(handler, smtp_port)
    mailer = Mailer(NotificationSettings(smtp_host="127.0.0.1", smtp_port=smtp_port))
    try:
        await mailer.send(mail("before"))
        controller.stop()  # the server goes away, and with it the kept connection
        controller = server(handler, smtp_port)
        await mailer.send(mail("after"))
    finally:
        mailer.close()
        controller.stop()
    assert handler.subjects == ["before", "after"]
    assert handler.sessions == 2


async def test_a_refused_mail_fails_alone_and_the_next_one_goes(smtp_port: int) -> None:
    handler = Counting()
    controller = server(handler, smtp_port)
    mailer = Mailer(NotificationSettings(smtp_host="127.0.0.1", smtp_port=smtp_port))
    try:
        await mailer.send(mail("first"))
        with pytest.raises(SendFailed, match="SMTP"):
            await mailer.send(mail("refused", to="nobody@amal.example"))
        await mailer.send(mail("next"))
    finally:
        mailer.close()
        controller.stop()
    assert handler.subjects == ["first", "next"]


async def test_no_server_is_a_send_failure_not_a_crash(smtp_port: int) -> None:
    mailer = Mailer(NotificationSettings(smtp_host="127.0.0.1", smtp_port=smtp_port))
    with pytest.raises(SendFailed, match="SMTPConnectError"):
        await mailer.send(mail("nowhere"))
