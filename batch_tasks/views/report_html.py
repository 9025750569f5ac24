"""The HTML report: one self-contained file (styles, pictures and its one small script
inline; no network) drawn from report_data's data. It touches nothing: it returns text.

Rendered by Jinja2 with autoescape on, its pictures by report_svg: every value from
task.md or an agent's output is text, never markup. The data itself is embedded as JSON
(`<script type="application/json" id="report-data">`, with `<`, `>` and `&` escaped).
"""

from __future__ import annotations

import json
import time
from importlib import resources

import jinja2
from markupsafe import Markup

from ..formats import duration, money
from . import report_svg


def render(data: dict) -> str:
    template = _environment().get_template("report.html.j2")
    return template.render(
        data=data,
        timeline=Markup(report_svg.timeline(data)),
        graph=Markup(report_svg.graph(data)),
        data_json=Markup(_script_json(data)),
    )


def _script_json(data: dict) -> str:
    """JSON that cannot end the script holding it."""
    text = json.dumps(data, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: resources.files("batch_tasks.templates").joinpath(name).read_text("utf-8"))
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters.update(duration=duration, money=money, when=_when, number=lambda n: f"{n:,}" if n else "")
    return environment


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"
