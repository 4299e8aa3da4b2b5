"""The one CSV reader: rows as strings, and every failure an InputError naming the file."""

from __future__ import annotations

import pytest

from faceaudit.csvfile import read_csv_table
from faceaudit.errors import InputError


def test_reads_rows_with_bom_and_line_numbers(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("\ufeffpath, sex\na.jpg,female\nb.jpg,\n", encoding="utf-8")
    table = read_csv_table(p, what="manifest")
    assert table.columns == ("path", "sex")
    assert table.column("sex") == ["female", ""]
    assert [line for line, _ in table.numbered()] == [2, 3]
    table.require("path")
    with pytest.raises(InputError, match="manifest has no 'identity' column"):
        table.require("identity", what="manifest")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "not found"),
        ("dir", "is a directory"),
        (b"path\n\xff\xfe\n", "not UTF-8"),
        (b"", "is empty"),
        (b"a,b\n1,2,3\n", "line 2: more cells"),
        (b"a,a\n1,2\n", "repeats a column"),
    ],
)
def test_every_failure_names_the_file(tmp_path, content, reason):
    p = tmp_path / "bad.csv"
    if content == "dir":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(InputError, match=reason) as info:
        read_csv_table(p)
    assert info.value.path == str(p)
