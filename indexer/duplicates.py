"""The same service arriving twice (within a source or from two sources) is listed once.

Two active services are duplicates when their organisation, their name and their street address
(with ZIP) are the same after normalising case, punctuation and common street abbreviations:
for example a facility that is both on SAMHSA's mental health list and on its substance use
list. One of them is kept (the most recently verified, then the one with the most categories,
then by source name) and the others point at it with `service.duplicate_of`: search lists the
kept one, with the categories of all of them; admins see every merge and can undo it by editing
either record. Nothing is deleted, and a later import recomputes the groups.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from service.db import Database
from service.directory.tables import (
    hsds_tables,
    organization,
    service,
    service_category,
)

ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "road": "rd", "boulevard": "blvd", "drive": "dr",
    "suite": "ste", "north": "n", "south": "s", "east": "e", "west": "w", "place": "pl",
    "court": "ct", "lane": "ln", "highway": "hwy", "parkway": "pkwy", "floor": "fl",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "incorporated": "inc", "saint": "st", "center": "ctr", "centre": "ctr",
}
_WORD = re.compile(r"[a-z0-9]+")
_FOLD = ABBREVIATIONS.get


def normalise(text: str | None) -> str:
    """Lower case, words only, common abbreviations folded."""
    words = _WORD.findall((text or "").lower())
    return " ".join(map(_FOLD, words, words))  # each word's abbreviation, else the word


def duplicate_key(name: str | None, org: str | None, street: str | None,
                  postal_code: str | None, *, memo: dict[str, str] | None = None,
                  ) -> tuple[str, str, str, str] | None:
    """The key two duplicates share, or None when there is too little to compare.

    `memo` keeps normalised names across calls (an organisation's name repeats on each of its
    services)."""
    street_n = normalise(street)
    zip5 = (postal_code or "")[:5]
    if not street_n or not zip5 or not name:
        return None
    if memo is None:
        memo = {}
    name_n = memo.get(name)
    if name_n is None:
        name_n = memo[name] = normalise(name)
    org = org or ""
    org_n = memo.get(org)
    if org_n is None:
        org_n = memo[org] = normalise(org)
    return name_n, org_n, street_n, zip5


def find_duplicates(db: Database) -> set[str]:
    """Recompute every duplicate group; returns the services whose listing changed."""
    sal = hsds_tables["service_at_location"]
    address = hsds_tables["address"]
    first_address = (select(address.c.location_id, func.min(address.c.id).label("address_id"))
                     .where(func.coalesce(address.c.address_type, "physical") != "postal")
                     .group_by(address.c.location_id).subquery())
    categories = (select(service_category.c.service_id,
                         func.count().label("n")).group_by(service_category.c.service_id)
                  .subquery())
    query = (
        select(service.c.id, service.c.name, organization.c.name.label("org"),
               address.c.address_1, address.c.postal_code, service.c.verified_at,
               service.c.record_source, func.coalesce(categories.c.n, 0).label("categories"),
               service.c.duplicate_of)
        .join(organization, organization.c.id == service.c.organization_id, isouter=True)
        .join(sal, sal.c.service_id == service.c.id)
        .join(first_address, first_address.c.location_id == sal.c.location_id)
        .join(address, address.c.id == first_address.c.address_id)
        .join(categories, categories.c.service_id == service.c.id, isouter=True)
        .where(service.c.is_active).where(~service.c.is_hidden)
    )
    groups: dict[tuple[str, ...], dict[str, tuple[Any, int, str]]] = defaultdict(dict)
    current: dict[str, str | None] = {}
    memo: dict[str, str] = {}
    with db.session() as session:
        # Rows unpacked, not read by name: this reads every active listing after each import.
        for sid, name, org, street, postal, verified_at, source, n, duplicate_of in \
                session.execute(query):
            current[sid] = duplicate_of
            key = duplicate_key(name, org, street, postal, memo=memo)
            if key is not None:  # only what choosing the keeper needs
                groups[key][sid] = (verified_at, n, source)
        stale = session.execute(select(service.c.id, service.c.duplicate_of)
                                .where(service.c.duplicate_of.is_not(None))).all()
    wanted: dict[str, str | None] = {sid: None for sid, _ in stale}
    for members in groups.values():
        if len(members) < 2:
            continue
        first_source = min(source for _, _, source in members.values())
        keeper = max(members, key=lambda sid: (
            members[sid][0] is not None, str(members[sid][0] or ""), members[sid][1],
            members[sid][2] == first_source, sid))
        for sid in members:
            wanted[sid] = None if sid == keeper else keeper
    before = dict(stale)
    changes = {sid: target for sid, target in wanted.items()
               if current.get(sid, before.get(sid)) != target}
    if changes:
        with db.session(write=True) as session:
            for sid, target in changes.items():
                session.execute(update(service).where(service.c.id == sid)
                                .values(duplicate_of=target))
    touched = set(changes)
    touched.update(t for t in changes.values() if t)
    touched.update(v for k, v in current.items() if k in changes and v)
    return touched


class DuplicateCheck:
    """`find_duplicates` in another process, beside an index rebuild's copying (the rebuild's
    `alongside`): it writes the index in one process while another core would wait. The same
    process then builds the documents of the listings the check changed, for the rebuild to
    put in place of the ones it copied."""

    def __init__(self, db: Database) -> None:
        self.url = db.url
        self.touched: set[str] = set()
        self.seconds = 0.0  # how long the check ran
        self._scratch = tempfile.TemporaryDirectory(prefix="signpost-duplicates-")
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[tuple[set[str], float]] | None = None

    @property
    def part(self) -> Path:
        return Path(self._scratch.name) / "part-duplicates.sqlite"

    def start(self) -> None:
        from service.search.sqlite import fewer_collections

        # (It keeps a key for every listing while it makes others: fewer collections of the
        # youngest objects, as in building documents, spare a ninth of its time.)
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                                         initializer=fewer_collections)
        self._future = self._pool.submit(_find_in_worker, self.url, self.part)

    def finish(self) -> tuple[set[str], Path | None]:
        if self._future is None or self._pool is None:
            return self.touched, None
        try:
            self.touched, self.seconds = self._future.result()
        finally:
            self._pool.shutdown()
            self._pool = self._future = None
        return self.touched, self.part

    def close(self) -> None:
        """Remove the documents' file."""
        self._scratch.cleanup()


def _find_in_worker(url: Any, part_path: Path) -> tuple[set[str], float]:
    from service.search.documents import build_documents
    from service.search.sqlite import PartFile

    started = time.perf_counter()
    db = Database(url)
    try:
        touched = find_duplicates(db)
        part = PartFile(part_path)
        try:
            with db.engine.connect() as conn:
                part.add(build_documents(conn, sorted(touched)))
        finally:
            part.close()
        return touched, round(time.perf_counter() - started, 2)
    finally:
        db.dispose()
