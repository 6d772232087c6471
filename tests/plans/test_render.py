"""ibcbench.plans.render: plans and plan diffs as text, HTML and figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ibcbench.plans import (
    PlanDiff,
    diff_plan_sets,
    diff_plans,
    format_diff_text,
    format_plan_text,
    format_set_diff_text,
    load_plan,
    plot_diff,
    render_diff_html,
)
from tests.plans.samples import ALL, FIXTURES, fixture

# the wallet lookup without and with the service indexes, as format_diff_text prints it
# (recorded from tests/fixtures/plans/wallet_history_{no,service}_indexes.json)
WALLET_DIFF_TEXT = """\
faster: 2.659 ms -> 0.037 ms (x0.01); buffers 552 -> 3
  [node type] 0/0/0: Seq Scan on clearing_operations -> Bitmap Heap Scan on clearing_operations (-2.640 ms)
  [added] 0/0/0/0:  -> Bitmap Index Scan using idx_clearing_operations_wallet_status (+0.010 ms)
  [buffers] 0/0/0: 552 hit / 0 read -> 3 hit / 0 read"""


def _wallet_diff() -> PlanDiff:
    return diff_plans(
        fixture("wallet_history_no_indexes.json"), fixture("wallet_history_service_indexes.json")
    )


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_fixture_formats_as_text(path: Path) -> None:
    assert format_plan_text(load_plan(path)).startswith("planning")


def test_a_plan_as_text() -> None:
    # recorded from tests/fixtures/plans/hash_join.json
    assert format_plan_text(fixture("hash_join.json")) == (
        "planning 2.092 ms, execution 8.958 ms, chunks scanned 1, excluded 0\n"
        "-> Aggregate  [incl 8.908 ms, excl 0.026 ms, est 4, act 1 q=4.0, buf 1478h/0r]\n"
        "  -> Hash Join  [incl 8.882 ms, excl 1.137 ms, est 170, act 196, buf 1478h/0r]\n"
        "    -> Seq Scan on _hyper_1_1_chunk  [incl 4.723 ms, excl 4.723 ms, est 20,000,"
        " act 20,000, buf 926h/0r]\n"
        "    -> Hash  [incl 3.022 ms, excl 0.033 ms, est 159, act 159, buf 552h/0r]\n"
        "      -> Seq Scan on clearing_operations  [incl 2.989 ms, excl 2.989 ms, est 159,"
        " act 159, buf 552h/0r]"
    )


def test_a_diff_as_text() -> None:
    d = _wallet_diff()
    assert "Seq Scan" in format_diff_text(d)
    assert format_diff_text(d) == WALLET_DIFF_TEXT
    assert format_diff_text(d, limit=1).splitlines()[1:] == [
        WALLET_DIFF_TEXT.splitlines()[1],
        "  ... 2 more",
    ]
    same = fixture("hash_join.json")
    assert format_diff_text(diff_plans(same, same)).endswith("\n  no differences")


def test_a_plan_set_diff_as_text_shows_only_changed_queries() -> None:
    join = fixture("hash_join.json")
    sets = diff_plan_sets(
        {"wallet": fixture("wallet_history_no_indexes.json"), "join": join},
        {"wallet": fixture("wallet_history_service_indexes.json"), "join": join},
    )
    assert format_set_diff_text(sets) == "== wallet\n" + WALLET_DIFF_TEXT
    assert format_set_diff_text(diff_plan_sets({"join": join}, {"join": join})) == (
        "no plan changes"
    )


def test_the_html_of_a_diff_shows_both_plans_nodes() -> None:
    page = render_diff_html(_wallet_diff(), standalone=True)
    assert 'class="node changed"' in page and page.startswith("<!doctype html>")
    nodes = re.findall(r'<div class="node ?([a-z]*)">([^<]*)</div>', page)
    # before's three nodes and a gap where after has a new one, then after's four
    assert nodes == [
        ("", "Limit  0.001 ms excl · 552 buf"),
        ("", "  Sort  0.004 ms excl · 552 buf"),
        ("changed", "    Seq Scan on clearing_operations  2.644 ms excl · 552 buf"),
        ("", "&nbsp;"),
        ("", "Limit  0.001 ms excl · 3 buf"),
        ("", "  Sort  0.004 ms excl · 3 buf"),
        ("changed", "    Bitmap Heap Scan on clearing_operations  0.004 ms excl · 3 buf"),
        (
            "added",
            "      Bitmap Index Scan using idx_clearing_operations_wallet_status  0.010 ms excl"
            " · 2 buf",
        ),
    ]
    removed = render_diff_html(
        diff_plans(
            fixture("wallet_history_service_indexes.json"),
            fixture("wallet_history_no_indexes.json"),
        )
    )
    assert re.findall(r'<div class="node removed">\s*Bitmap Index Scan using ', removed)


def test_the_html_of_a_diff_escapes_names() -> None:
    raw = json.loads((FIXTURES / "wallet_history_no_indexes.json").read_text())
    scan = raw[0]["Plan"]["Plans"][0]["Plans"][0]
    assert scan["Relation Name"] == "clearing_operations"
    scan["Relation Name"] = "<ops & co>"
    before, after = load_plan(json.dumps(raw)), fixture("wallet_history_service_indexes.json")
    page = render_diff_html(diff_plans(before, after), title="<script>x</script>", standalone=True)
    assert "<script>" not in page and "<ops" not in page
    assert "<title>&lt;script&gt;x&lt;/script&gt;</title>" in page
    assert "<h4>&lt;script&gt;x&lt;/script&gt; — " in page
    assert "Seq Scan on &lt;ops &amp; co&gt;  2.644 ms excl" in page
    sets = render_diff_html(
        diff_plan_sets({"<q&1>": before}, {"<q&1>": after}, names=("<a>", "b&c"))
    )
    assert "<q&1>" not in sets and "<td>&lt;q&amp;1&gt;</td>" in sets
    assert "<th>&lt;a&gt; ms</th><th>b&amp;c ms</th>" in sets
    assert "<h4>&lt;q&amp;1&gt; — " in sets


def test_a_diff_as_a_figure() -> None:
    import matplotlib.pyplot as plt

    fig = plot_diff(_wallet_diff())
    (ax,) = fig.axes
    # the biggest mover on top, named as the after plan names it
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == (
        "Bitmap Heap Scan on clearing_operations"
    )
    assert ax.get_title() == "faster, 2.659 ms (before) → 0.037 ms (after)"
    plt.close(fig)
