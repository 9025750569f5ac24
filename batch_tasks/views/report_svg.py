"""The report's two pictures as SVG built from report_data's data: the timeline (a row
per item, a bar per attempt and per wait, groups banded, usage-limit pauses shaded,
the concurrency under it) and the dependency graph. It touches nothing: it returns text.

Drawn with xml.etree.ElementTree, which escapes every text and attribute it writes, so
nothing from task.md or an agent's output becomes markup. SVG needs no script, so the
page shows at once, however big the run (plotly.js alone takes seconds to load).
Every bar carries its data (data-kind, data-item, data-start, data-end) and a <title>,
which browsers show on hover.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from ..formats import duration, money

ROW = 16  # px per item row
LABEL = 250  # px for item names, at most
WIDTH = 1000  # px for time
RIGHT = 150  # px for group names
AXIS = 26
STRIP = 90  # px for the concurrency strip
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
COLUMN = 190  # px per group in the graph
NAME_CHARS = 34


def _svg(width: float, height: float, label: str) -> ET.Element:
    # As wide as the page allows, never wider than drawn: the viewBox keeps its proportions.
    return ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "viewBox": f"0 0 {width:.0f} {height:.0f}",
                              "width": "100%", "style": f"max-width: {width:.0f}px", "role": "img", "aria-label": label,
                              "font-family": "system-ui, sans-serif", "font-size": "11"})


def _add(parent: ET.Element, tag: str, text: str | None = None, title: str | None = None, **attributes) -> ET.Element:
    element = ET.SubElement(parent, tag, {name.rstrip("_").replace("_", "-"): str(value) for name, value in attributes.items()})
    if title:
        ET.SubElement(element, "title").text = title
    if text is not None:
        element.text = text
    return element


def _short(text: str, limit: int = NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _span(data: dict) -> tuple[float, float]:
    moments = [s["start"] for s in data["segments"]] + [s["end"] for s in data["segments"]]
    moments += [data["run"]["started"]] if data["run"].get("started") else []
    if not moments:
        return 0.0, 1.0
    first, last = min(moments), max(moments)
    return first, max(last, first + 1.0)


def _tick_step(seconds: float) -> int:
    return next((step for step in TICK_STEPS if seconds / step <= 10), TICK_STEPS[-1])


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def timeline(data: dict) -> str:
    rows = data["items"]
    index = {row["key"]: number for number, row in enumerate(rows)}
    first, last = _span(data)
    scale = WIDTH / (last - first)
    left = min(LABEL, 16 + 6.5 * max((len(_short(row["key"])) for row in rows), default=8))

    def x(moment: float) -> float:
        return left + (moment - first) * scale

    chart_height = AXIS + ROW * max(1, len(rows))
    svg = _svg(left + WIDTH + RIGHT, chart_height + STRIP + 40, "timeline of the run")
    _group_bands(svg, data, rows, left)
    for pause in data["pauses"]:
        end = pause["end"] or pause["start"]
        _add(svg, "rect", title=f"{pause['agent']} paused for a usage limit, {_clock(pause['start'])} to {_clock(end)}",
             x=f"{x(pause['start']):.1f}", y=AXIS, width=f"{max(1.0, (end - pause['start']) * scale):.1f}",
             height=ROW * len(rows), fill=data["kinds"]["paused"]["colour"], opacity="0.35", class_="pause")
    step = _tick_step(last - first)
    for tick in range(0, int(last - first) + 1, step):
        _add(svg, "line", x1=f"{x(first + tick):.1f}", x2=f"{x(first + tick):.1f}", y1=AXIS - 4,
             y2=chart_height + STRIP, stroke="#dde", stroke_width="1")
        _add(svg, "text", f"+{duration(tick)}", x=f"{x(first + tick):.1f}", y=AXIS - 8, text_anchor="middle", fill="#556")
    for row in rows:
        y = AXIS + ROW * index[row["key"]]
        _add(svg, "text", _short(row["key"]), title=f"{row['key']}: {row['outcome']}", x=f"{left - 6:.0f}", y=y + ROW - 4,
             text_anchor="end", fill="#223")
    bars = _add(svg, "g", class_="bars")
    for segment in data["segments"]:
        look = data["kinds"][segment["kind"]]
        y = AXIS + ROW * index[segment["item"]] + 2
        _add(bars, "rect", title=_bar_title(segment, look["label"]), x=f"{x(segment['start']):.1f}", y=y,
             width=f"{max(1.0, (segment['end'] - segment['start']) * scale):.1f}", height=ROW - 4, rx="2",
             fill=look["colour"], class_="bar", data_kind=segment["kind"], data_item=segment["item"],
             data_attempt=segment["attempt"], data_start=f"{segment['start']:.3f}", data_end=f"{segment['end']:.3f}")
    _concurrency(svg, data, x, chart_height + 20, left)
    return ET.tostring(svg, encoding="unicode")


def _bar_title(segment: dict, label: str) -> str:
    lines = [f"{segment['item']} · attempt {segment['attempt']} · {label}",
             f"{_clock(segment['start'])} → {_clock(segment['end'])} ({duration(segment['end'] - segment['start'])})"]
    if segment.get("reason") and segment["kind"] != "done":
        lines.append(segment["reason"][:300])
    if segment.get("cost_usd"):
        lines.append(money(segment["cost_usd"]))
    return "\n".join(lines)


def group_spans(rows: list[dict]) -> list[tuple[str, int, int]]:
    """(group, first row, last row) for each run of rows of one group."""
    spans: list[tuple[str, int, int]] = []
    for number, row in enumerate(rows):
        if spans and spans[-1][0] == row["group"]:
            spans[-1] = (row["group"], spans[-1][1], number)
        else:
            spans.append((row["group"], number, number))
    return spans


def _group_bands(svg: ET.Element, data: dict, rows: list[dict], left: float) -> None:
    titles = {group["group"]: group["title"] for group in data["groups"]}
    for number, (group, first_row, last_row) in enumerate(group_spans(rows)):
        top, height = AXIS + ROW * first_row, ROW * (last_row - first_row + 1)
        _add(svg, "rect", x=0, y=top, width=f"{left + WIDTH + RIGHT:.0f}", height=height,
             fill="#eef2f7" if number % 2 == 0 else "#fbfcfd", class_="group", data_group=group)
        if number:
            _add(svg, "line", x1=0, x2=f"{left + WIDTH + RIGHT:.0f}", y1=top, y2=top, stroke="#8899aa", stroke_width="1")
        _add(svg, "text", _short(titles.get(group, group), 24), title=titles.get(group, group), x=f"{left + WIDTH + 8:.0f}",
             y=top + min(height, ROW) - 4, fill="#445", font_weight="bold")


def _concurrency(svg: ET.Element, data: dict, x, top: float, left: float) -> None:
    """How many items ran at once: a step line under the timeline, against the run's slots."""
    points = data["concurrency"]
    workers = data["run"].get("workers") or 0
    highest = max([workers, 1] + [count for _, count in points])
    bottom = top + STRIP - 20

    def y(count: float) -> float:
        return bottom - count * (STRIP - 30) / highest

    _add(svg, "text", "running", x=f"{left - 6:.0f}", y=top + 12, text_anchor="end", fill="#223")
    _add(svg, "line", x1=f"{left:.0f}", x2=f"{left + WIDTH:.0f}", y1=bottom, y2=bottom, stroke="#889")
    if workers:
        _add(svg, "line", title=f"{workers} slots (-n {workers})", x1=f"{left:.0f}", x2=f"{left + WIDTH:.0f}", y1=f"{y(workers):.1f}",
             y2=f"{y(workers):.1f}", stroke="#555", stroke_dasharray="4 3", class_="slots")
        _add(svg, "text", f"{workers} slots", x=f"{left + WIDTH + 8:.0f}", y=f"{y(workers) + 4:.1f}", fill="#555")
    if not points:
        return
    path = [f"M{x(points[0][0]):.1f},{bottom:.1f}"]
    for moment, count in points:
        path.append(f"H{x(moment):.1f}V{y(count):.1f}")
    _add(svg, "path", d="".join(path) + f"V{bottom:.1f}Z", fill="#1f77b4", fill_opacity="0.35", stroke="#1f77b4",
         class_="concurrency")


def graph(data: dict) -> str:
    """Groups as columns, in order; a line from a group's box stands for all of its items."""
    groups = data["graph"]["groups"]
    outcome = {row["key"]: row["outcome"] for row in data["items"]}
    colours = {"done": data["kinds"]["done"]["colour"], "failed": data["kinds"]["failed-permanent"]["colour"],
               "interrupted": data["kinds"]["interrupted"]["colour"]}
    where: dict[str, tuple[float, float]] = {}
    for column, group in enumerate(groups):
        where[group["group"]] = (column * COLUMN + 10, 30)
        for row, key in enumerate(group["items"]):
            where[key] = (column * COLUMN + 20, 60 + row * ROW)
    tallest = max((len(group["items"]) for group in groups), default=0)
    svg = _svg(max(1, len(groups)) * COLUMN + 20, 80 + tallest * ROW, "dependency graph")
    edges = _add(svg, "g", class_="edges", fill="none")
    for edge in data["graph"]["edges"]:
        if edge["from"] not in where or edge["to"] not in where:
            continue
        (x0, y0), (x1, y1) = where[edge["from"]], where[edge["to"]]
        if edge["whole_group"]:
            x0, y0 = x0 + COLUMN - 40, y0
        else:
            x0 = x0 + COLUMN - 60
        _add(edges, "path", d=f"M{x0:.0f},{y0:.0f}C{x0 + 30:.0f},{y0:.0f} {x1 - 30:.0f},{y1:.0f} {x1 - 5:.0f},{y1:.0f}",
             stroke="#c5c9d0" if edge["whole_group"] else "#1f77b4", stroke_width="1", class_="edge")
    for group in groups:
        x0, y0 = where[group["group"]]
        flags = [name for name, on in (("after: all", group["barrier"]), ("pipeline", group["pipeline"])) if on]
        _add(svg, "rect", title=group["group"] + (f" ({', '.join(flags)})" if flags else ""), x=x0, y=y0 - 14,
             width=COLUMN - 50, height=20, rx="3", fill="#d62728" if group["barrier"] else "#445566", class_="node-group")
        _add(svg, "text", _short(group["title"], 22), x=x0 + 5, y=y0, fill="#fff")
        for key in group["items"]:
            x1, y1 = where[key]
            _add(svg, "circle", title=f"{key}: {outcome.get(key, 'not in this run')}", cx=x1, cy=y1 - 4, r="4",
                 fill=colours.get(outcome.get(key), "#cccccc"), class_="node")
            _add(svg, "text", _short(key.partition(":")[2], 22), x=x1 + 8, y=y1, fill="#223")
    return ET.tostring(svg, encoding="unicode")
