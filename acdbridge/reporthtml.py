"""The HTML form of a report: one self-contained page (no CDN, no script), inline SVG charts drawn
here: per group, service level and ASA by interval against their targets, and offered vs
answered vs abandoned; then the table of every row, each missed target marked."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

GROUPINGS = ("queue", "agent", "team", "call_type", "hotline", "pbx")
MAX_CHARTED = 20  # groups charted; the table always has every row
W, H, PAD = 720, 180, 36
QUEUE_COLUMNS = ("offered", "answered", "abandoned", "service_level", "asa_s", "abandon_rate", "avg_wait_s",
                 "aht_s", "satisfaction", "fcr")  # fmt: skip
AGENT_COLUMNS = ("answered", "aht_s", "talk_s", "logged_in_s", "occupancy", "calls_per_hour",
                 "ring_no_answer", "adherence")  # fmt: skip
RATIOS = {
    "service_level",
    "abandon_rate",
    "occupancy",
    "adherence",
    "satisfaction",
    "fcr",
    "percent_answered",
}
STYLE = """body{font:14px sans-serif;margin:24px;color:#222}h2{margin-top:32px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}td.k{text-align:left}
td.miss{background:#fdd;color:#900;font-weight:bold}svg{display:block;margin:8px 0}.note{color:#666}"""


def _group_key(rows: Sequence[dict[str, Any]]) -> str:
    return next((g for g in GROUPINGS if rows and g in rows[0]), "queue")


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in RATIOS and isinstance(value, int | float):
        return f"{100 * value:.1f} %"
    if isinstance(value, float):
        return f"{value:.1f}"
    return escape(str(value))


def _line_chart(title: str, labels: list[str], series: dict[str, list[float | None]],
                target: float | None, ratio: bool, unit: str = " s") -> str:  # fmt: skip
    """Lines over the intervals, a dashed target line; None leaves a gap."""
    values = [v for vs in series.values() for v in vs if v is not None]
    top = max([*values, target or 0.0, 1.0 if ratio else 1e-9]) * (1.0 if ratio else 1.15)
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return PAD + i * (W - 2 * PAD) / (n - 1)

    def y(v: float) -> float:
        return H - PAD + 10 - v / top * (H - 2 * PAD)

    parts = [f'<svg width="{W}" height="{H}" role="img" aria-label="{escape(title)}">',
             f'<text x="{PAD}" y="14">{escape(title)}</text>',
             f'<line x1="{PAD}" y1="{y(0):.1f}" x2="{W - PAD}" y2="{y(0):.1f}" stroke="#999"/>']  # fmt: skip
    if target is not None:
        label = f"target {_fmt('service_level', target) if ratio else f'{target:g} s'}"
        parts.append(f'<line x1="{PAD}" y1="{y(target):.1f}" x2="{W - PAD}" y2="{y(target):.1f}" '
                     'stroke="#c00" stroke-dasharray="5,4"/>'
                     f'<text x="{W - PAD - 90}" y="{y(target) - 4:.1f}" '
                     f'fill="#c00">{label}</text>')  # fmt: skip
    for (name, vs), colour in zip(series.items(), ("#1565c0", "#2e7d32", "#ef6c00"), strict=False):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v is not None)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>'
                  for i, v in enumerate(vs) if v is not None]  # fmt: skip
        parts.append(f'<text x="{PAD + 120 * list(series).index(name) + 200}" y="14" fill="{colour}">'
                     f"{escape(name)}</text>")  # fmt: skip
    for i in (0, len(labels) - 1):
        if 0 <= i < len(labels):
            parts.append(f'<text x="{x(i) - (0 if i == 0 else 150):.1f}" y="{H - 4}" font-size="11">'
                         f"{escape(labels[i])}</text>")  # fmt: skip
    parts.append(f'<text x="2" y="{y(top * (0.999 if ratio else 1 / 1.15)):.1f}" font-size="11">'
                 f"{_fmt('service_level', top) if ratio else f'{top / 1.15:.0f}{unit}'}</text>")  # fmt: skip
    return "".join(parts) + "</svg>"


def _charts(rows: list[dict[str, Any]], key: str, targets: dict[str, Any]) -> list[str]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    out = []
    for name, rs in list(groups.items())[:MAX_CHARTED]:
        labels = [r["start"] for r in rs]
        sl_target = (
            targets.get("queues", {}).get(name, {}).get("service_level", targets.get("service_level", {}))
        )
        out.append(f"<h2>{escape(key)} {escape(str(name) if name is not None else '(none)')}</h2>")
        out.append(_line_chart("service level", labels, {"service level": [r["service_level"] for r in rs]},
                               sl_target.get("min"), True))  # fmt: skip
        out.append(_line_chart("ASA (s)", labels, {"ASA": [r["asa_s"] for r in rs]},
                               targets.get("asa_s", {}).get("max"), False))  # fmt: skip
        kinds = ("offered", "answered", "abandoned")
        counts: dict[str, list[float | None]] = {k: [float(r[k]) for r in rs] for k in kinds}
        out.append(_line_chart("offered, answered, abandoned", labels, counts, None, False, " calls"))
    if len(groups) > MAX_CHARTED:
        out.append(f'<p class="note">charts for the first {MAX_CHARTED} of {len(groups)} groups</p>')
    return out


def _table(rows: list[dict[str, Any]], key: str) -> str:
    columns = QUEUE_COLUMNS if rows and "service_level" in rows[0] else AGENT_COLUMNS
    head = "".join(f"<th>{c}</th>" for c in ("start", "end", key, *columns))
    body = []
    for r in rows:
        cells = [f'<td class="k">{escape(r["start"])}</td>', f'<td class="k">{escape(r["end"])}</td>',
                 f'<td class="k">{_fmt(key, r[key])}</td>']  # fmt: skip
        cells += [f"<td{' class=miss' if c in r['misses'] else ''}>{_fmt(c, r.get(c))}</td>" for c in columns]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def to_html(report: dict[str, Any], title: str) -> str:
    rows, targets = report["rows"], report["targets"]
    key = _group_key(rows)
    charts = _charts(rows, key, targets) if rows and "service_level" in rows[0] else []
    shown = ", ".join(f"{escape(k)} {'≥' if 'min' in t else '≤'} {t.get('min', t.get('max'))}"
                      for k, t in targets.items() if k != "queues")  # fmt: skip
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<p class="note">targets: {shown}. Missed targets are marked red.</p>{"".join(charts)}'
            f"<h2>every row</h2>{_table(rows, key)}</body></html>\n")  # fmt: skip
