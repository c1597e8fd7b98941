"""The book's table cells: numbers to significant digits, and every kind of missing value as an
en dash (a count table of ``Int64`` holds ``pd.NA`` where a method did not run)."""

from __future__ import annotations

import math

import pandas as pd

from clm.book.display import number, table


def test_numbers_and_missing_values():
    assert [number(x) for x in (1800, 12345, 0.6351, 20.5, 1.3)] == ["1800", "12,345", "0.635", "20.5", "1.30"]
    assert number(None) == number(math.nan) == number(pd.NA) == "–"


def test_an_int64_count_table_shows_whole_counts_and_dashes():
    counts = pd.DataFrame({"sentiment": [1800.0, 1000.0], "humor": [1800.0, math.nan]},
                          index=pd.Index(["interpolation", "mixture"], name="method")).astype("Int64")  # fmt: skip
    html = table(counts, index=True).data
    assert "1800</td>" in html and "1000</td>" in html
    assert "1800.0" not in html and "<NA>" not in html and "&lt;NA&gt;" not in html
    assert html.count(">–</td>") == 1
