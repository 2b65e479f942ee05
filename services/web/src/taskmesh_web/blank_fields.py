"""Form fields for templates: a blank field's HTML is rendered once per process, then reused.

WTForms takes about 200 us to render a field and the board shows fourteen, nearly always
blank (the new-task form, the filters without a query, the delete forms): a third of the page.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Flask
from jinja2 import Environment, pass_environment
from markupsafe import Markup
from wtforms import Field

# Blank fields are a fixed set (one per form class, field and hint); the bound is a safety net.
MAX_ENTRIES = 512

_rendered: dict[tuple[Any, ...], Markup] = {}


def _is_blank(f: Field) -> bool:
    # Nothing submitted, no errors and still the class default: the HTML depends on nothing else.
    return not f.errors and not f.raw_data and f.data == f.object_data


@pass_environment
def field(
    env: Environment, f: Field, autocomplete: str | None = None, hint: str | None = None
) -> Markup:
    """The `render_field` macro's HTML for `f`, from memory while `f` is blank."""
    macros: Any = env.get_template("_macros.html").module
    # The macro returns Markup: autoescaping is on for .html templates.
    render = macros.render_field
    if not _is_blank(f):
        return cast(Markup, render(f, autocomplete, hint))
    key = (type(f._form), f.name, f.id, repr(f.data), autocomplete, hint)
    html = _rendered.get(key)
    if html is None:
        html = cast(Markup, render(f, autocomplete, hint))
        if len(_rendered) < MAX_ENTRIES:
            _rendered[key] = html
    return html


def install(app: Flask) -> None:
    """Make `field(f, autocomplete=None, hint=None)` available to every template."""
    app.jinja_env.globals["field"] = field
