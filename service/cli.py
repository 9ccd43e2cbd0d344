"""The `signpost` command: noun-verb subcommands over functions the tests also call."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from service.config import Settings, get_settings
from service.db import Database


def _database(settings: Settings) -> Database:
    db = Database(settings.database_url)
    db.migrate()
    return db


def make_geocoder(settings: Settings):  # noqa: ANN201
    """The import geocoder: offline tables, plus an online one only if an admin enabled it."""
    from indexer.geocode import Geocoder, make_online_geocoder

    online = None
    if settings.geocoder != "offline":
        kwargs = {"user_agent": settings.geocoder_user_agent, "scheme": settings.geocoder_scheme}
        if settings.geocoder_domain:
            kwargs["domain"] = settings.geocoder_domain
        online = make_online_geocoder(settings.geocoder, **kwargs)
    return Geocoder(online=online, cache_path=settings.geocode_cache_path,
                    min_delay_seconds=settings.geocoder_min_delay_seconds)


@click.group()
def main() -> None:
    """Signpost: a community resource directory with referral matching."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app and API."""
    import uvicorn

    # The worker count, as uvicorn itself reads it, for the workers to see too: each runs
    # only its share of the CPUs' worth of searches at once (service.search.sqlite).
    os.environ["WEB_CONCURRENCY"] = str(workers)
    from service.search.service import ensure_current_index

    settings = get_settings()
    db = _database(settings)
    ensure_current_index(settings, db)
    db.dispose()
    uvicorn.run("service.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="info")


@main.group()
def index() -> None:
    """Load and rebuild the directory."""


@index.command("load")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "format_", default=None,
              help="hsds3, or flat:SOURCE for a declared flat list (detected when omitted).")
@click.option("--source", default=None, help="Source name (defaults to the file's name).")
@click.option("--dry-run", is_flag=True, help="Read and check everything; write nothing.")
@click.option("--force", is_flag=True, help="Allow deactivating more than a fifth of a source.")
def index_load(path: Path, format_: str | None, source: str | None, dry_run: bool,
               force: bool) -> None:
    """Import PATH (an HSDS 3.x datapackage or JSON file, or a declared flat list)."""
    from indexer.pipeline import ImportStopped, load

    settings = get_settings()
    db = _database(settings)
    bar = _Progress()
    try:
        report = load(db, path, format=format_, source=source, dry_run=dry_run, force=force,
                      geocoder=make_geocoder(settings), progress=bar)
    except ImportStopped as stopped:
        bar.done()
        for line in stopped.report.lines():
            click.echo(line)
        sys.exit(2)
    except (FileNotFoundError, ValueError) as exc:
        bar.done()
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:  # disk full, database locked or unreachable
        bar.done()
        from service.errors import database_unavailable

        known = database_unavailable(exc)
        cause = type(getattr(exc, "orig", None) or exc).__name__
        reason = known.message if known else f"the database refused the import ({cause})."
        raise click.ClickException(f"{reason} The directory was not changed; see "
                                   "`signpost index runs`.") from exc
    bar.done()
    for line in report.lines():
        click.echo(line)


@index.command("demo")
def index_demo() -> None:
    """Load the bundled demo directory (data/demo)."""
    from indexer.demo import load_demo

    settings = get_settings()
    db = _database(settings)
    for report in load_demo(db, progress=_Progress()):
        click.echo(report.lines(max_problems=5)[0])
        click.echo("\n".join(report.lines(max_problems=0)[1:]))
    from indexer.demo import DEMO_PASSWORD, ensure_demo_accounts

    accounts = ensure_demo_accounts(db, environment=settings.environment)
    click.echo("\nDemo accounts (password for each: " + DEMO_PASSWORD + "):")
    for role, username in accounts:
        click.echo(f"  {role:<13} {username}")
    click.echo("Sign in at http://127.0.0.1:8000/login (case manager: the referral dashboard; "
               "partner: the inbox and listings; admin: imports, users, reports).\n"
               "API: POST /api/v1/auth/token with username and password for a bearer token.\n"
               "Demo data is old: never use it for real referrals.")


@index.command("rebuild")
def index_rebuild() -> None:
    """Re-derive parsed fields and rebuild the search index, without serving a half-built one."""
    from indexer.rebuild import rebuild

    settings = get_settings()
    db = _database(settings)
    counts = rebuild(db)
    from service.search.service import make_backend

    backend = make_backend(settings, db)
    if backend is not None:
        counts["search_documents"] = backend.rebuild(db)
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@index.command("runs")
@click.option("--limit", default=20, show_default=True)
def index_runs(limit: int) -> None:
    """List recent import runs."""
    from sqlalchemy import select

    from service.directory.tables import import_run

    db = _database(get_settings())
    with db.session() as session:
        rows = session.execute(select(import_run).order_by(import_run.c.id.desc())
                               .limit(limit)).mappings().all()
    for r in rows:
        counts = r["counts"] or {}
        started = r["started_at"].strftime("%Y-%m-%d %H:%M")
        click.echo(f"{r['id']:>5} {r['status']:<8} {r['source']:<32} {started} "
                   f"errors {counts.get('errors', '-')}")


@index.command("problems")
@click.argument("run_id", type=int)
def index_problems(run_id: int) -> None:
    """Every problem of one import run (file, line, field, why)."""
    from indexer.pipeline import run_problems

    db = _database(get_settings())
    for p in run_problems(db, run_id):
        where = p["file"] + (f":{p['line']}" if p.get("line") else "")
        click.echo(f"{p['severity']}\t{where}\t{p.get('table') or ''}\t{p.get('field') or ''}\t"
                   f"{p['why']}")


@main.group()
def export() -> None:
    """Export the directory."""


@export.command("hsds")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--source", "sources", multiple=True, help="Only these sources (repeatable).")
def export_hsds(out: Path, sources: tuple[str, ...]) -> None:
    """Write an HSDS 3.1 datapackage (CSV and JSON) to the folder OUT."""
    from indexer.export import export_datapackage

    db = _database(get_settings())
    counts = export_datapackage(db, out, sources=list(sources) or None)
    click.echo(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))


@main.group()
def users() -> None:
    """Accounts: add users with a role."""


@users.command("add")
@click.option("--role", required=True,
              type=click.Choice(["admin", "supervisor", "case_manager", "partner"]))
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for when omitted (at least 12 characters).")
@click.option("--agency", default=None, help="Supervisors and case managers: the agency's name "
              "(created if new).")
@click.option("--organization", "organizations", multiple=True,
              help="Partners: a directory organization id (repeatable).")
@click.option("--location", "locations", multiple=True,
              help="Partners: only these sites of the organizations (repeatable).")
@click.option("--email", default=None,
              help="Where the user's notifications go (none: they wait on Signpost).")
def users_add(role: str, username: str, password: str, agency: str | None,
              organizations: tuple[str, ...], locations: tuple[str, ...],
              email: str | None) -> None:
    """Add a user (the password is checked against the policy)."""
    from service.accounts import service as accounts
    from service.audit.service import CLI
    from service.errors import AppError

    db = _database(get_settings())
    try:
        with db.session(write=True) as session:
            user = accounts.create_user(session, actor=CLI, username=username,
                                        password=password, role=role, agency_name=agency,
                                        organization_ids=organizations, location_ids=locations,
                                        email=email)
    except AppError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}" if exc.field
                                   else exc.message) from exc
    finally:
        db.dispose()
    click.echo(f"added {user['role']} {user['username']} (id {user['id']})")


@main.group()
def notify() -> None:
    """Notifications: deliver the outbox by email."""


@notify.command("send")
def notify_send() -> None:
    """Run one delivery pass: queue follow-up reminders that fell due, then try every pending
    message once over SMTP (SIGNPOST_SMTP_*). Failures are retried by later passes."""
    from service.notifications.sender import SmtpConfig, delivery_pass

    settings = get_settings()
    config = SmtpConfig.from_settings(settings)
    if config is None:
        raise click.ClickException("SIGNPOST_SMTP_HOST is not set: nothing can be sent (the "
                                   "messages wait in the outbox)")
    db = _database(settings)
    try:
        report = delivery_pass(db, config=config, base_url=settings.public_base_url)
    finally:
        db.dispose()
    click.echo(f"sent {report.sent}, not sent {report.failed} (tried again later), gave up "
               f"{report.gave_up}; follow-up reminders queued {report.queued}")


class _Progress:
    """A one-line progress display for long imports (stderr, only on a terminal)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, stage: str, done: int) -> None:
        if self.enabled:
            click.echo(f"\r{stage}: {done:,} rows".ljust(40), nl=False, err=True)
            self.shown = True

    def done(self) -> None:
        if self.shown:
            click.echo("", err=True)
            self.shown = False



if __name__ == "__main__":
    main()
