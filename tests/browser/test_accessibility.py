"""Accessibility smoke check: axe-core (vendored, injected through the DevTools protocol so the
page's own CSP stays strict) finds no serious or critical violation on the main pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def violations(page: Any) -> list[str]:
    page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes: `
                        + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ") + ")");
    }""")
    return found


@pytest.mark.parametrize("width", [390, 1280])
def test_search_and_detail_pages_have_no_serious_violations(page: Any, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/search")
    assert violations(page) == []
    page.goto("/search?q=food+pantry&near=20001")
    assert violations(page) == []
    page.get_by_role("link", name="Capitol Food Pantry").click()
    page.wait_for_load_state()
    assert violations(page) == []
