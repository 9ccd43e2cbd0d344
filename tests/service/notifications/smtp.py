"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives; users with email
addresses. Shared by the notification tests and the whole-loop tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from sqlalchemy import update

from service.accounts.tables import app_user
from service.db import Database
from service.notifications.sender import SmtpConfig

BASE_URL = "https://signpost.example.org"
EMAILS = {"casey": "casey@north.example", "pat": "pat@org0.example",
          "otto": "otto@org1.example"}


def free_port() -> int:
    """A port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Inbox:
    """The server's behaviour and what it got. `refuse`: an SMTP reply to every RCPT."""

    port: int
    received: list[Received] = field(default_factory=list)
    refuse: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """Start and stop an aiosmtpd server on one port."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.inbox.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def smtp_config(port: int) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, starttls=False,
                      sender="signpost@north.example", timeout=5)


def set_emails(db: Database, emails: dict[str, str] = EMAILS) -> None:
    """Give the world's users email addresses."""
    with db.session(write=True) as session:
        for username, address in emails.items():
            session.execute(update(app_user).where(app_user.c.username == username)
                            .values(email=address))
