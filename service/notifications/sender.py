"""Deliver the outbox over SMTP: one pass at a time (`signpost notify send`), or every minute in
a background thread of the app (`DeliveryLoop`, started when `SIGNPOST_SMTP_HOST` is set).

A pass claims pending rows in a short write transaction (each claim bumps `attempts` with a
conditional UPDATE, so two senders never mail the same row), talks to the SMTP server with no
transaction open, then records each outcome in another short transaction: `sent_at`, or
`last_error` and the next try after an exponential backoff (1 minute, doubling, at most 6
hours); after `MAX_ATTEMPTS` (about a day of tries) it gives up (`next_attempt_at` NULL).
The logs carry notification ids, attempt counts and error classes only: never an address, a
subject or a body (an SMTP server's reply can echo the address, so it is kept out of the logs
and the address is blanked out of `last_error`).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import select, update

from service.config import Settings
from service.db import Database
from service.notifications import service as notifications
from service.notifications.tables import notification

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12  # with the backoff below, about a day of tries
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)
CLAIM_FOR = timedelta(minutes=10)  # a crashed sender's claims become due again after this
BATCH = 100
ERROR_LENGTH = 500


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to hand messages over (from the `smtp_*` settings)."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    sender: str = "signpost@localhost"
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """The settings' SMTP server; None when no host is set (nothing is ever sent)."""
        if not settings.smtp_host:
            return None
        return cls(host=settings.smtp_host, port=settings.smtp_port,
                   username=settings.smtp_username, password=settings.smtp_password,
                   starttls=settings.smtp_starttls, sender=settings.smtp_from)

    @property
    def helo_name(self) -> str:
        """The name we greet the server with: the sender address's domain."""
        return self.sender.rpartition("@")[2] or "localhost"


@dataclass
class PassReport:
    """What one delivery pass did."""

    queued: int = 0  # follow-up reminders queued by this pass
    sent: int = 0
    failed: int = 0  # will be tried again
    gave_up: int = 0


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


def _claim(db: Database, *, now: datetime, limit: int) -> list[dict[str, Any]]:
    with db.session(write=True) as session:
        rows = session.execute(
            select(notification.c.id, notification.c.recipient_address, notification.c.subject,
                   notification.c.body, notification.c.attempts)
            .where(notifications.pending_filter(now))
            .order_by(notification.c.next_attempt_at, notification.c.id).limit(limit)
        ).mappings().all()
        claimed = []
        for row in rows:
            result = session.execute(
                update(notification).where(notification.c.id == row["id"])
                .where(notification.c.sent_at.is_(None))
                .where(notification.c.attempts == row["attempts"])
                .values(attempts=row["attempts"] + 1, next_attempt_at=now + CLAIM_FOR))
            if result.rowcount == 1:
                claimed.append({**row, "attempts": row["attempts"] + 1})
    return claimed


def _email(config: SmtpConfig, row: dict[str, Any], now: datetime) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = config.sender
    mail["To"] = row["recipient_address"]
    mail["Subject"] = row["subject"]
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = make_msgid(idstring=f"notification-{row['id']}",
                                    domain=config.helo_name)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(row["body"])
    return mail


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    if config.port == 465:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host, config.port, local_hostname=config.helo_name, timeout=config.timeout,
            context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(config.host, config.port, local_hostname=config.helo_name,
                            timeout=config.timeout)
        try:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
        except BaseException:
            smtp.close()
            raise
    try:
        if config.username:
            smtp.login(config.username, config.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _error_class(exc: BaseException) -> str:
    """For the logs: the error's class and SMTP code, never the server's words."""
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({c for c, _ in exc.recipients.values()})
        code = codes[0] if codes else None
    return type(exc).__name__ + (f" {code}" if code else "")


def _error_text(exc: BaseException, address: str | None) -> str:
    """For `last_error`: what went wrong, with the recipient's address blanked out."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        detail = "; ".join(f"{code} {reply.decode('utf-8', 'replace')}"
                           for code, reply in exc.recipients.values())
        text = f"SMTPRecipientsRefused: the server refused the recipient ({detail})"
    elif isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        reply = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        text = f"{type(exc).__name__}: {exc.smtp_code} {reply}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    if address:
        text = text.replace(address, "<recipient>")
    return text[:ERROR_LENGTH]


def _send(config: SmtpConfig, rows: Sequence[dict[str, Any]],
          now: datetime) -> list[tuple[dict[str, Any], BaseException | None]]:
    """Hand each row to the server over one connection; each row's error, or None if sent."""
    try:
        smtp = _connect(config)
    except (OSError, smtplib.SMTPException) as exc:
        return [(row, exc) for row in rows]
    results: list[tuple[dict[str, Any], BaseException | None]] = []
    try:
        for i, row in enumerate(rows):
            try:
                smtp.send_message(_email(config, row, now))
            except smtplib.SMTPServerDisconnected as exc:
                results.extend((r, exc) for r in rows[i:])
                break
            except (OSError, smtplib.SMTPException) as exc:
                results.append((row, exc))
            else:
                results.append((row, None))
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    return results


def _record(db: Database, results: Sequence[tuple[dict[str, Any], BaseException | None]], *,
            now: datetime, report: PassReport) -> None:
    with db.session(write=True) as session:
        for row, exc in results:
            mine = (update(notification).where(notification.c.id == row["id"])
                    .where(notification.c.attempts == row["attempts"]))
            if exc is None:
                session.execute(mine.values(sent_at=now, next_attempt_at=None, last_error=None))
                report.sent += 1
                log.info("notification %d sent (attempt %d)", row["id"], row["attempts"])
                continue
            error = _error_text(exc, row["recipient_address"])
            if row["attempts"] >= MAX_ATTEMPTS:
                session.execute(mine.values(
                    next_attempt_at=None,
                    last_error=f"gave up after {row['attempts']} attempts: {error}"[
                        :ERROR_LENGTH]))
                report.gave_up += 1
                log.warning("notification %d not sent; gave up after %d attempts (%s)",
                            row["id"], row["attempts"], _error_class(exc))
                continue
            session.execute(mine.values(last_error=error,
                                        next_attempt_at=now + retry_delay(row["attempts"])))
            report.failed += 1
            log.warning("notification %d not sent (attempt %d, %s); will retry", row["id"],
                        row["attempts"], _error_class(exc))


def delivery_pass(db: Database, *, config: SmtpConfig, base_url: str | None = None,
                  now: datetime | None = None, batch: int = BATCH) -> PassReport:
    """Queue follow-up reminders that fell due, then try every pending message once."""
    now = now or datetime.now(UTC)
    report = PassReport()
    with db.session(write=True) as session:
        report.queued = notifications.queue_follow_ups_due(session, base_url=base_url, now=now)
    while True:
        rows = _claim(db, now=now, limit=batch)
        if not rows:
            break
        _record(db, _send(config, rows, now), now=now, report=report)
        if len(rows) < batch:
            break
    return report


class DeliveryLoop:
    """A daemon thread that runs a delivery pass now and then every `interval` seconds."""

    def __init__(self, db: Database, config: SmtpConfig, *, base_url: str | None = None,
                 interval: float = 60.0) -> None:
        self.db, self.config, self.base_url, self.interval = db, config, base_url, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signpost-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivery_pass(self.db, config=self.config, base_url=self.base_url)
            except Exception as exc:  # noqa: BLE001 - keep trying; say what kind of failure
                log.error("notification delivery pass failed (%s); trying again in %.0f s",
                          type(exc).__name__, self.interval)
            self._stop.wait(self.interval)
