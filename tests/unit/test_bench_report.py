"""The benchmark report: medians, ratios against the baseline, and the Markdown table."""

from __future__ import annotations

from bench.common import Row, fmt, table


def test_row_median_and_ratio_use_the_baseline_median() -> None:
    row = Row("restart", [30.0, 50.0, 31.0], baseline=[49.0, 40.0, 60.0])
    assert row.median == 31.0
    assert row.ratio == 31.0 / 49.0


def test_row_without_baseline_has_no_ratio() -> None:
    assert Row("size", [1.0]).ratio is None


def test_fmt_shows_seconds_and_bytes_in_megabytes() -> None:
    assert fmt(1.234, "s") == "1.23 s"
    assert fmt(704_000_000, "B") == "704 MB"


def test_table_marks_a_missed_target_and_lists_few_runs() -> None:
    rows = [
        Row("restart", [30.0, 50.0, 31.0], baseline=[49.0, 40.0, 60.0], target="half", met=False),
        Row("start-up", [0.05] * 15, baseline=[0.02] * 15, target="<= 0.3 s", met=True),
    ]
    lines = table(rows).splitlines()
    assert lines[0].startswith("| measure | median | runs |")
    assert lines[2] == "| restart | 31.00 s | 30.00 s, 50.00 s, 31.00 s | 49.00 s | 0.63x | half | **no** |"
    assert lines[3] == "| start-up | 0.05 s | 15 runs | 0.02 s | 2.50x | <= 0.3 s | yes |"
