"""The XLSX form of a report (xlsxwriter): a sheet `rows` with every row, one sheet per group (the
first MAX_SHEETS, in row order), and a `targets` sheet. Columns are the CSV's; a figure that
missed its target is red."""

from __future__ import annotations

import io
import re
from typing import Any

import xlsxwriter

from acdbridge.reportcli import columns_of, flat

MAX_SHEETS = 100
GROUPINGS = ("queue", "agent", "team", "call_type", "hotline", "pbx")
_NOT_IN_NAME = re.compile(r"[\[\]:*?/\\]")  # characters Excel refuses in a sheet name


def _sheet_name(name: Any, used: set[str]) -> str:
    base = _NOT_IN_NAME.sub("_", "(none)" if name is None else str(name) or "(empty)")[:28]
    out, n = base, 1
    while out.lower() in used:
        n += 1
        out = f"{base}~{n}"
    used.add(out.lower())
    return out


def _write(book: Any, name: str, rows: list[dict[str, Any]], miss: Any, bold: Any) -> None:
    sheet = book.add_worksheet(name)
    table = [flat(r) for r in rows]
    columns = columns_of(table)
    for c, column in enumerate(columns):
        sheet.write_string(0, c, column, bold)
    for r, (row, cells) in enumerate(zip(rows, table, strict=True), start=1):
        for c, column in enumerate(columns):
            value = cells.get(column)
            style = miss if column in row.get("misses", ()) else None
            if value is None:
                sheet.write_blank(r, c, None, style)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                sheet.write_string(r, c, str(value), style)
            else:
                sheet.write_number(r, c, value, style)
    sheet.freeze_panes(1, 0)


def to_xlsx(report: dict[str, Any]) -> bytes:
    rows: list[dict[str, Any]] = report["rows"]
    key = next((g for g in GROUPINGS if rows and g in rows[0]), "queue")
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    miss = book.add_format({"font_color": "#9c0006", "bg_color": "#ffc7ce"})
    bold = book.add_format({"bold": True})
    used = {"rows", "targets"}
    _write(book, "rows", rows, miss, bold)
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    for name, group in list(groups.items())[:MAX_SHEETS]:
        _write(book, _sheet_name(name, used), group, miss, bold)
    targets = book.add_worksheet("targets")
    for c, head in enumerate(("kpi", "queue", "min", "max")):
        targets.write_string(0, c, head, bold)
    lines = [(k, "", t) for k, t in report["targets"].items() if k != "queues"]
    lines += [(k, q, t) for q, ts in report["targets"].get("queues", {}).items() for k, t in ts.items()]
    for r, (kpi, queue, target) in enumerate(lines, start=1):
        targets.write_string(r, 0, kpi)
        targets.write_string(r, 1, queue)
        for c, bound in ((2, "min"), (3, "max")):
            if bound in target:
                targets.write_number(r, c, target[bound])
    book.close()
    return buf.getvalue()
