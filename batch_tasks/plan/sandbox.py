"""The sandbox prompt templates are checked and rendered in: Jinja2's, with no loader (a
template stands alone: include, import and extend are refused), and `*`, `**` and
`range()` bounded, so that a template can take neither code nor all memory. Only prompt
imports it, and only when a template is checked or rendered: a command that lists the
batch never loads Jinja2. It touches nothing.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_RANGE = 10_000  # items of one range() in a template
MAX_PRODUCT = 1024 * 1024  # elements or characters one `*` or `**` may make
TemplateError, TemplateSyntaxError = jinja2.TemplateError, jinja2.TemplateSyntaxError

NOT_ALLOWED = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "import", nodes.Extends: "extend"}


@lru_cache(maxsize=64)
def compiled(source: str) -> jinja2.Template:
    return environment().from_string(source)


class BoundedSandbox(SandboxedEnvironment):
    """The sandbox, with `*` and `**` bounded: `'x' * 10**9` is an error, not all the memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        numbers = all(isinstance(side, (int, float)) for side in (left, right))
        if operator == "**" and numbers and abs(right) > 1024 and abs(left) > 1:
            raise SecurityError(f"{left} ** {right} is too big for a template")
        if operator == "*" and not numbers:
            sequence, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(times, int) and hasattr(sequence, "__len__") and len(sequence) * times > MAX_PRODUCT:
                raise SecurityError(f"a repetition of more than {MAX_PRODUCT} elements in a template")
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() of {len(numbers)} numbers in a template; at most {MAX_RANGE}")
    return numbers


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    # No loader: a template stands alone (include and import are refused when it loads).
    sandboxed = BoundedSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    sandboxed.globals["range"] = _range
    return sandboxed
