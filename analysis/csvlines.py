"""Line accounting for CSV tables: no physical line of a file goes unaccounted.

DuckDB's CSV reader, told to go on past broken lines, lets one unterminated quote
swallow the rest of a file into one field. The loader therefore counts what the
file holds, independently of the parser, and checks the two agree:

* :func:`scan_file` reads each file once (in the fingerprint thread, beside the
  SHA-256): its physical lines (``\\n``, ``\\r\\n`` or a lone ``\\r`` end one) and
  its quote characters;
* :func:`account` compares the lines with the records the reader saw. When every
  record is one line, ``lines == header lines + records``. Otherwise (quoted
  fields holding line breaks, blank lines, or an odd number of quotes) it reads
  the file line by line once more, following which lines end inside a quoted
  field (:func:`line_scan`), and either accounts for every line (blank lines,
  lines inside multi-line fields) or stops the run naming the line where the
  quote that broke the file opened.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = p.write_bytes(b'a,b\\n1,"x\\ny"\\n\\n2,3\\n4,"oops\\n5,6\\n')
>>> s = scan_file(p)
>>> s.lines, s.quotes
(7, 3)
>>> line_scan(p)
LineScan(records=4, blank_lines=1, lines_in_fields=2, open_quote_line=6, multiline={2: 2, 4: 6})
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

from .contract import ExportError

__all__ = ["FileScan", "LineScan", "scan_file", "line_scan", "line_at", "header_lines",
           "account", "broken_id"]

_BLOCK = 1 << 22


def _is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _is_csv(path: Path) -> bool:
    return not path.name.lower().endswith(".parquet")


@dataclass
class FileScan:
    """One pass over a table file: its fingerprint and, for a CSV, what its lines hold."""

    fingerprint: dict
    #: Physical lines (a last line without a line break counts); None for Parquet or when
    #: the file cannot be decompressed (the reader reports that).
    lines: int | None = None
    #: Quote characters (``"``) in the file.
    quotes: int = 0


class _Counter:
    def __init__(self):
        self.lf = self.cr = self.crlf = self.quotes = self.size = 0
        self.last = b""

    def feed(self, block: bytes) -> None:
        if not block:
            return
        self.lf += block.count(b"\n")
        self.cr += block.count(b"\r")
        self.crlf += block.count(b"\r\n") + (self.last == b"\r" and block[:1] == b"\n")
        self.quotes += block.count(b'"')
        self.size += len(block)
        self.last = block[-1:]

    @property
    def lines(self) -> int:
        breaks = self.lf + self.cr - self.crlf
        return breaks + (1 if self.size and self.last not in (b"\n", b"\r") else 0)


def scan_file(path: Path) -> FileScan:
    """SHA-256, size and (for a CSV) the physical lines and quotes of ``path`` in one read.

    A gzip file is hashed as stored and counted as decompressed.
    """
    h = hashlib.sha256()
    count = _Counter() if _is_csv(path) and not _is_gzip(path) else None
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
            if count is not None:
                count.feed(block)
    scan = FileScan({"file": path.name, "bytes": path.stat().st_size, "sha256": h.hexdigest()})
    if _is_csv(path) and _is_gzip(path):
        count = _Counter()
        try:
            with gzip.open(path, "rb") as fh:
                for block in iter(lambda: fh.read(_BLOCK), b""):
                    count.feed(block)
        except (OSError, EOFError, zlib.error):
            return scan         # unreadable: the reader says so, naming the file
    if count is not None:
        scan.lines, scan.quotes = count.lines, count.quotes
    return scan


def _text(path: Path):
    raw = gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
    # newline=None: \n, \r\n and a lone \r each end a line, as in scan_file.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=None)


def header_lines(path: Path) -> int:
    """How many physical lines the header row takes (more than one only if it quotes a break)."""
    with _text(path) as fh:
        reader = csv.reader(fh)
        try:
            next(reader)
        except (StopIteration, csv.Error):
            return 1
        return max(1, reader.line_num)


@dataclass
class LineScan:
    """A file's lines, followed through its quotes (the header counts as a record)."""

    records: int
    blank_lines: int
    lines_in_fields: int
    #: The line where a quote opened that the file never closes (None when all close).
    open_quote_line: int | None
    #: Records spanning lines: record number (the header is 1) → its first line (the
    #: first 10,000).
    multiline: dict = None


def line_scan(path: Path) -> LineScan:
    """Follow which lines end inside a quoted field, by the parity of their quotes.

    In a well-formed CSV every quoted field holds an even number of quote characters
    (its two quotes and each doubled quote), so a line with an odd number of them
    starts or ends a field that spans lines.
    """
    records = blank = in_fields = 0
    open_at = None
    inside = False
    multi: dict[int, int] = {}
    with _text(path) as fh:
        for n, line in enumerate(fh, 1):
            body = line.rstrip("\n")
            if inside:
                in_fields += 1
            elif body == "":
                blank += 1
                continue
            else:
                records += 1
            if body.count('"') % 2:
                inside = not inside
                if inside:
                    open_at = n
                    if len(multi) < 10_000:
                        multi.setdefault(records, n)
    return LineScan(records, blank, in_fields, open_at if inside else None, multi)


def line_at(path: Path, byte_position: int) -> int:
    """The physical line holding ``byte_position`` (of the decompressed file)."""
    count = _Counter()
    raw = gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
    left = max(0, int(byte_position))
    with raw as fh:
        while left > 0:
            block = fh.read(min(_BLOCK, left))
            if not block:
                break
            count.feed(block)
            left -= len(block)
    return count.lf + count.cr - count.crlf + 1


def account(path: Path, scan: FileScan | None, records: int,
            broken_multiline_at: int | None = None) -> dict | None:
    """Check that every physical line of a CSV is accounted for; return the accounting.

    ``records`` is how many data records the reader saw (accepted and broken);
    ``broken_multiline_at`` the byte position of the first broken record that spans
    lines, if any. Raises :class:`ExportError` naming the file and line when lines
    are unaccounted for. Returns ``{"lines", "header_lines", "records",
    "blank_lines", "lines_in_fields"}`` (None for Parquet).
    """
    if scan is None or scan.lines is None:
        return None
    head = header_lines(path)
    info = {"lines": scan.lines, "header_lines": head, "records": int(records),
            "blank_lines": 0, "lines_in_fields": 0}
    if broken_multiline_at is not None:
        line = line_at(path, broken_multiline_at)
        ls = line_scan(path)
        if ls.open_quote_line is not None:
            _unclosed(path, ls.open_quote_line, scan.lines)
        raise ExportError(path, f"line {line:,}: a quoted field opened on this line runs over "
                                f"several lines and the record does not split into the header's "
                                f"columns (a stray or unterminated quote?); fix the quoting of "
                                f"that line")
    if scan.quotes % 2 == 0 and scan.lines == head + records:
        return info
    ls = line_scan(path)
    if ls.open_quote_line is not None:
        _unclosed(path, ls.open_quote_line, scan.lines)
    if ls.records - 1 != records:
        raise ExportError(path, f"{ls.records - 1:,} records by the file's lines, but the CSV "
                                f"reader read {records:,}; lines are unaccounted for (check the "
                                f"quoting)")
    info.update(blank_lines=ls.blank_lines, lines_in_fields=ls.lines_in_fields,
                multiline=ls.multiline)
    return info


def broken_id(path: Path, info: dict, row: int, column: str) -> ExportError:
    """The error for a line break inside a column that cannot hold one (data ``row``)."""
    line = (info.get("multiline") or {}).get(row + 1)
    where = f"line {line:,} (data row {row:,})" if line else f"data row {row:,}"
    return ExportError(path, f"{where}: column '{column}' holds a line break, which it cannot; "
                             f"a stray quote there runs over the lines after it (fix the "
                             f"quoting of that line)")


def _unclosed(path: Path, line: int, lines: int) -> None:
    rest = lines - line + 1
    raise ExportError(path, f"line {line:,}: a quote opened on this line is never closed, so the "
                            f"rest of the file ({rest:,} line{'s' if rest != 1 else ''}) would be "
                            f"read as one field; fix or remove that line")
