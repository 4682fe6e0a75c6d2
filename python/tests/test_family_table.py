"""The README's family table says what runs: every family the PyTorch engine runs, once, with the routing kind
the engine reports for it (families.py on transformers' config of the tiny builds the parity test runs)."""
import os
import re

from moe_scope_worker import families
from moe_scope_worker.protocol import FAMILIES
from tiny_families import tiny_config

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def table_rows() -> dict[str, list[str]]:
    text = open(README, encoding="utf-8").read()
    section = text.split("\n## MoE families\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.match(r"`([a-z0-9_]+)`", cells[0]) if len(cells) == 5 else None
        if m:
            assert m.group(1) not in rows, f"README: {m.group(1)} has two rows"
            rows[m.group(1)] = cells
    return rows


def test_the_readme_table_lists_every_family_with_the_routing_kind_the_engine_reports():
    rows = table_rows()
    assert sorted(rows) == sorted(FAMILIES), f"README family table: missing {sorted(set(FAMILIES) - set(rows))}, extra {sorted(set(rows) - set(FAMILIES))}"
    for family, cells in rows.items():
        assert cells[1] == "yes", f"README: {family}: the PyTorch column says {cells[1]!r}; the engine runs every family"
        kind = families.routing_kind(family, tiny_config(family))
        assert f"`{kind}`" in cells[3], f"README: {family}: routing kind {cells[3]!r}, the engine reports {kind}"
