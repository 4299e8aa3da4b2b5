"""The one CSV reader: manifests, pair lists, score files and rate tables all come through here.

Every failure is an :class:`~faceaudit.errors.InputError` that names the file (and the line, where there is
one): missing, a directory, not UTF-8, not a readable CSV, or missing a required column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass

from faceaudit.errors import InputError

FIRST_DATA_LINE = 2
"""Line number of the first data row (line 1 is the header)."""


@dataclass(frozen=True, slots=True)
class CsvTable:
    """A CSV file read whole: its header and its rows, every cell a string as written ('' when empty)."""

    path: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def numbered(self) -> Iterator[tuple[int, dict[str, str]]]:
        """``(line number in the file, row)`` for each data row."""
        return enumerate(self.rows, start=FIRST_DATA_LINE)

    def require(self, *columns: str, what: str = "file") -> None:
        """Raise :class:`InputError` naming the missing columns, if any of ``columns`` is absent."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise InputError(
                self.path,
                f"{what} has no {', '.join(map(repr, missing))} column (columns: {list(self.columns)})",
            )

    def column(self, name: str) -> list[str]:
        """One column's cells, in order."""
        return [row[name] for row in self.rows]

    def first_present(self, *names: str) -> str | None:
        """The first of ``names`` that is a column of this table, or ``None``."""
        return next((n for n in names if n in self.columns), None)


def read_csv_table(path: str | os.PathLike, *, what: str = "CSV file") -> CsvTable:
    """Read a UTF-8 CSV file (a BOM is allowed) with a header line.

    ``what`` names the file's role in error messages ("manifest", "scores file", ...).
    """
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                raise InputError(name, f"{what} is empty (no header line)")
            columns = tuple(c.strip() for c in header)
            if len(set(columns)) != len(columns):
                raise InputError(name, f"{what} repeats a column name (columns: {list(columns)})")
            reader.fieldnames = list(columns)
            rows = []
            for line, row in enumerate(reader, start=FIRST_DATA_LINE):
                if None in row:
                    raise InputError(name, f"line {line}: more cells than the header has columns")
                rows.append({k: (v if v is not None else "") for k, v in row.items()})
    except FileNotFoundError:
        raise InputError(name, f"{what} not found") from None
    except IsADirectoryError:
        raise InputError(name, f"{what} is a directory, not a CSV file") from None
    except PermissionError:
        raise InputError(name, f"{what} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise InputError(name, f"{what} is not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(name, f"{what} is not a readable CSV ({exc})") from None
    return CsvTable(path=name, columns=columns, rows=tuple(rows))
