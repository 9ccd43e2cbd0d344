"""The stage a large package's reading workers fill: their parts, copied in, are what one
reader would have staged, ids indexed the same way."""

from __future__ import annotations

from pathlib import Path

from indexer.staging import Stage, StagedPart, columns_of


def _part(folder: Path, ids: list[str], *, born_new: bool = True) -> StagedPart:
    """A worker's stage of organizations with these ids, indexed and closed."""
    part = Stage(folder, born_new=born_new)
    cols = columns_of("organization")
    rows = [[{"id": i, "name": f"Org {i}", "record_source": "city"}.get(c) for c in cols]
            + ["organizations.csv", n + 2, None] for n, i in enumerate(ids)]
    part.insert_many("organization", rows)
    part.conn.execute("COMMIT")
    part.index_ids(["organization"])
    return part.closed_part()


def _staged(stage: Stage) -> list[tuple]:
    return list(stage.query("SELECT id, name, _line, _op FROM organization ORDER BY rowid"))


def test_a_part_is_copied_with_its_rows_marks_and_unique_id_index(tmp_path: Path) -> None:
    stage = Stage(tmp_path, born_new=True)
    try:
        stage.copy_from(_part(tmp_path, ["a", "b"]), ["organization"])
        stage.commit()
        assert _staged(stage) == [("a", "Org a", 2, "new"), ("b", "Org b", 3, "new")]
        assert stage.duplicated == set()
        index = next(stage.query("SELECT sql FROM sqlite_master WHERE name = "
                                 "'ix_organization_id'"))[0]
        assert index.startswith("CREATE UNIQUE INDEX")
    finally:
        stage.close()


def test_an_id_twice_in_a_part_or_across_parts_is_kept_for_the_duplicate_check(
        tmp_path: Path) -> None:
    within = Stage(tmp_path)
    across = Stage(tmp_path)
    try:
        within.copy_from(_part(tmp_path, ["a", "a"], born_new=False), ["organization"])
        within.commit()
        assert [r[0] for r in _staged(within)] == ["a", "a"]
        assert within.duplicated == {"organization"}

        across.copy_from(_part(tmp_path, ["a", "b"], born_new=False), ["organization"])
        across.copy_from(_part(tmp_path, ["c", "a"], born_new=False), ["organization"])
        across.commit()
        assert [r[0] for r in _staged(across)] == ["a", "b", "c", "a"]
        assert across.duplicated == {"organization"}
        assert [r[1] for r in _staged(across)] == ["Org a", "Org b", "Org c", "Org a"]
    finally:
        within.close()
        across.close()
