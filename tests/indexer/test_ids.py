"""Directory ids are uuid5 of (source, table, source id): the same in every version, so a
re-import finds its rows again and an export imported elsewhere keeps its ids."""

from __future__ import annotations

import uuid

from indexer.ids import NAMESPACE, directory_id


def test_a_directory_id_is_the_uuid5_of_source_table_and_source_id() -> None:
    for source_id in ["1", "svc-0042", "Ünïcode/ünd Slash", "x" * 300,
                      *(str(n) for n in range(500))]:  # every variant digit appears
        expected = uuid.uuid5(NAMESPACE, f"miami/service/{source_id}")
        assert directory_id("miami", "service", source_id) == str(expected)
