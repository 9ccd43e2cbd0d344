"""`make load`, bounded: the same code (`bench.load`) with 300 requests at concurrency 16
against the real server (two uvicorn workers on 127.0.0.1). Nothing is timed here (figures are
`make load`'s); what a user would notice is: no request fails, and every referral change the
server acknowledged is in the database with its whole history and audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import load

REQUESTS, CONCURRENCY = 300, 16


@pytest.mark.slow
def test_bounded_load_has_no_errors_and_loses_no_write(database_url: str,
                                                       tmp_path: Path) -> None:
    # SQLite the way `make load` prepares it (a built directory copied per run); PostgreSQL
    # through --database-url (a fresh database the run migrates and fills).
    url = None if database_url.startswith("sqlite") else database_url
    lines: list[str] = []
    results = load.run(requests=REQUESTS, concurrency=CONCURRENCY, directory="factory:30",
                       database_url=url, out=tmp_path, clients=12, echo=lines.append)
    load.report(results, echo=lines.append)
    summary = "\n".join(lines)

    assert results.requests == REQUESTS, summary
    assert results.error_count == 0, summary
    assert set(results.latencies) == {"search", "detail", "referral"}, summary
    check = results.check
    assert check["acknowledged"] > 0 and check["referrals"] > 0, summary
    assert check["lost"] == [] and check["broken"] == [] and check["audit_mismatch"] == [], \
        summary
    assert results.lost_writes == 0
    assert results.peak_rss_mb, "the server's memory was measured"
