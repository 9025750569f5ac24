"""The HTML report: one self-contained file (plotly.js inline, no network) drawn from
report_data's data. It touches nothing: it returns text.

Escaping: the page is rendered by Jinja2 with autoescape on; the charts' texts are
HTML-escaped before plotly sees them (plotly reads a few tags in texts), and plotly
writes its figures' JSON with `<`, `>` and `/` escaped, so nothing from task.md or an
agent's output can close a script or open one.
"""

from __future__ import annotations

import html
import json
import time
from importlib import resources

import jinja2
import plotly.graph_objects as go
import plotly.io
import plotly.offline

from .live_view import duration, money

ROW_PX = 18  # the timeline's height per item, so that every row keeps its label
SMALL_GRAPH = 200  # items; a bigger graph shows its nodes' names on hover only


def render(data: dict) -> str:
    template = _environment().get_template("report.html.j2")
    return template.render(
        data=data,
        plotly_js=plotly.offline.get_plotlyjs(),
        timeline=_figure_html(timeline_figure(data), "timeline"),
        graph=_figure_html(graph_figure(data), "graph"),
        data_json=json.dumps(data, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
    )


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: resources.files("batch_tasks.templates").joinpath(name).read_text("utf-8"))
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters.update(duration=duration, money=money, when=_when, number=lambda n: f"{n:,}" if n else "")
    return environment


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def _stamp(epoch: float) -> str:
    """A time plotly reads as a date, in this machine's local time, to the millisecond."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}"


def _figure_html(figure: go.Figure, div_id: str) -> str:
    config = {"displaylogo": False, "responsive": True}
    return plotly.io.to_html(figure, include_plotlyjs=False, full_html=False, div_id=div_id, config=config)


def timeline_figure(data: dict) -> go.Figure:
    """A bar per attempt and per wait, a row per item; the run's concurrency under it."""
    keys = [row["key"] for row in data["items"]]
    rows_px = max(160, ROW_PX * len(keys))
    strip_px = 150
    figure = go.Figure()
    for kind, look in data["kinds"].items():
        bars = [s for s in data["segments"] if s["kind"] == kind]
        if not bars:
            continue
        figure.add_trace(go.Bar(
            name=look["label"],
            orientation="h",
            y=[html.escape(s["item"]) for s in bars],
            base=[_stamp(s["start"]) for s in bars],
            x=[max(1.0, (s["end"] - s["start"]) * 1000) for s in bars],  # milliseconds, as plotly's date bars want
            marker_color=look["colour"],
            hovertext=[_bar_text(s, look["label"]) for s in bars],
            hoverinfo="text",
            customdata=[[s["start"], s["end"], s["attempt"]] for s in bars],
            meta=kind,
        ))
    times = [_stamp(t) for t, _ in data["concurrency"]]
    figure.add_trace(go.Scatter(
        name="running", x=times, y=[n for _, n in data["concurrency"]], yaxis="y2", mode="lines",
        line_shape="hv", fill="tozeroy", line_color="#1f77b4", hovertemplate="%{y} running at %{x}<extra></extra>",
    ))
    workers = data["run"].get("workers")
    if workers and times:
        figure.add_trace(go.Scatter(
            name=f"slots (-n {workers})", x=[times[0], times[-1]], y=[workers, workers], yaxis="y2", mode="lines",
            line={"dash": "dash", "color": "#555"}, hoverinfo="skip",
        ))
    split = strip_px / (rows_px + strip_px + 60)
    figure.update_layout(
        barmode="overlay",
        height=rows_px + strip_px + 140,
        margin={"l": 10, "r": 160, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        xaxis={"type": "date", "anchor": "y2", "title": "time"},
        yaxis={"domain": [split + 0.04, 1], "type": "category", "categoryorder": "array", "categoryarray": [html.escape(k) for k in keys],
               "autorange": "reversed", "automargin": True, "tickfont": {"size": 10}},
        yaxis2={"domain": [0, split], "title": "running", "rangemode": "tozero", "dtick": max(1, (workers or 1) // 4)},
        shapes=_group_bands(data) + _pause_bands(data),
        annotations=_group_labels(data),
    )
    return figure


def _bar_text(segment: dict, label: str) -> str:
    lines = [f"<b>{html.escape(segment['item'])}</b> · attempt {segment['attempt']} · {html.escape(label)}",
             f"{_stamp(segment['start'])[11:]} → {_stamp(segment['end'])[11:]} ({duration(segment['end'] - segment['start'])})"]
    if segment.get("reason") and segment["kind"] != "done":
        lines.append(html.escape(segment["reason"][:200]))
    if segment.get("cost_usd"):
        lines.append(money(segment["cost_usd"]))
    return "<br>".join(lines)


def _group_spans(data: dict) -> list[tuple[str, int, int]]:
    """(group, first row, last row) for each run of rows of one group."""
    spans: list[tuple[str, int, int]] = []
    for index, row in enumerate(data["items"]):
        if spans and spans[-1][0] == row["group"]:
            spans[-1] = (row["group"], spans[-1][1], index)
        else:
            spans.append((row["group"], index, index))
    return spans


def _group_bands(data: dict) -> list[dict]:
    return [
        {"type": "rect", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": first - 0.5, "y1": last + 0.5,
         "fillcolor": "#eef2f7" if number % 2 == 0 else "#ffffff", "line": {"width": 0}, "layer": "below"}
        for number, (_, first, last) in enumerate(_group_spans(data))
    ] + [
        {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": first - 0.5, "y1": first - 0.5,
         "line": {"width": 1, "color": "#8899aa"}}
        for _, first, _ in _group_spans(data)[1:]
    ]


def _group_labels(data: dict) -> list[dict]:
    titles = {group["group"]: group["title"] for group in data["groups"]}
    return [
        {"xref": "paper", "yref": "y", "x": 1.005, "y": (first + last) / 2, "xanchor": "left", "showarrow": False,
         "text": html.escape(titles.get(group, group))[:40], "font": {"size": 11, "color": "#445"}}
        for group, first, last in _group_spans(data)
    ]


def _pause_bands(data: dict) -> list[dict]:
    return [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": _stamp(pause["start"]), "x1": _stamp(pause["end"] or pause["start"]),
         "y0": 0, "y1": 1, "fillcolor": data["kinds"]["paused"]["colour"], "opacity": 0.3, "line": {"width": 0},
         "layer": "below", "name": f"{pause['agent']} paused"}
        for pause in data["pauses"]
    ]


def graph_figure(data: dict) -> go.Figure:
    """Groups as columns, in order; an item waits for the items or whole groups it has edges from."""
    where: dict[str, tuple[float, float]] = {}
    groups = data["graph"]["groups"]
    for column, group in enumerate(groups):
        where[group["group"]] = (column, -1.0)
        for row, key in enumerate(group["items"]):
            where[key] = (column, float(row))
    small = sum(len(g["items"]) for g in groups) <= SMALL_GRAPH
    figure = go.Figure()
    for whole, colour, name in ((False, "#1f77b4", "waits for an item"), (True, "#bbbbbb", "waits for a whole group")):
        xs, ys = [], []
        for edge in data["graph"]["edges"]:
            if edge["whole_group"] == whole and edge["from"] in where and edge["to"] in where:
                (x0, y0), (x1, y1) = where[edge["from"]], where[edge["to"]]
                xs += [x0, x1, None]
                ys += [y0, y1, None]
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line={"color": colour, "width": 1}, hoverinfo="skip"))
    outcome = {row["key"]: row["outcome"] for row in data["items"]}
    colours = {"done": data["kinds"]["done"]["colour"], "failed": data["kinds"]["failed-permanent"]["colour"],
               "interrupted": data["kinds"]["interrupted"]["colour"]}
    keys = [key for g in groups for key in g["items"]]
    figure.add_trace(go.Scatter(
        name="items", x=[where[k][0] for k in keys], y=[where[k][1] for k in keys],
        mode="markers+text" if small else "markers", text=[html.escape(k.partition(":")[2]) for k in keys],
        textposition="middle right", hovertext=[f"{html.escape(k)}: {outcome.get(k, 'not in this run')}" for k in keys],
        hoverinfo="text", marker={"size": 9, "color": [colours.get(outcome.get(k), "#cccccc") for k in keys]},
    ))
    figure.add_trace(go.Scatter(
        name="groups", x=[where[g["group"]][0] for g in groups], y=[-1.0] * len(groups), mode="markers+text",
        text=[html.escape(g["title"])[:30] + (" (after: all)" if g["barrier"] else "") + (" (pipeline)" if g["pipeline"] else "")
              for g in groups],
        textposition="top center", hoverinfo="text", hovertext=[html.escape(g["group"]) for g in groups],
        marker={"size": 14, "symbol": ["diamond" if g["barrier"] else "square" for g in groups],
                "color": ["#d62728" if g["barrier"] else "#445566" for g in groups]},
    ))
    tallest = max((len(g["items"]) for g in groups), default=1)
    figure.update_layout(
        height=min(1200, 160 + 24 * tallest), showlegend=True, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"visible": False, "range": [-0.5, len(groups) - 0.2]},
        yaxis={"visible": False, "autorange": "reversed"},
    )
    return figure
