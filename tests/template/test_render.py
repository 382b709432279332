"""Plain `{{ a.b }}` outputs are rendered without Liquid's set-up, with Liquid's output."""

from __future__ import annotations

from typing import Any

import pytest
from liquid import Environment, StrictUndefined
from liquid.exceptions import LiquidError

from tidings.template.render import RenderContext, _compiled, render_string

VALUES: list[Any] = [
    "Ada",
    "<b>Zoë & \"friends\"</b> 'x'",
    "",
    0,
    -7,
    10**20,
    1.5,
    1e-07,
    True,
    False,
    None,
    [1, "two", None],
    {"nested": 1},
    (1, 2),
]
SOURCES = [
    "Hello {{ profile.name }}!",
    "{{ value }}",
    "{{value}}|{{ data.value }}|{{ profile.name }}",
    "<p>{{ data.value }} and {{ missing }} and {{ data.missing.deeper }}</p>",
    "{{ data.value.size }} {{ data.value.first }}",
    "no outputs at all, {# not a comment #} }} {",
    "{{ recipient }} {{ recipient.length }} {{ urls.unsubscribe }}",
    "{{ data.value | upcase }}",
    "{% if data.value %}yes{% endif %} {{ data.value }}",
    "{{- data.value -}} x",
]


def _liquid(source: str, variables: dict[str, Any], *, html: bool, strict: bool) -> str:
    undefined = {"undefined": StrictUndefined} if strict else {}
    return Environment(autoescape=html, **undefined).from_string(source).render(**variables)


@pytest.mark.parametrize("html", [False, True])
@pytest.mark.parametrize("source", SOURCES)
def test_the_same_output_as_liquid_for_every_kind_of_value(source: str, html: bool) -> None:
    for value in VALUES:
        context = RenderContext(
            data={"value": value},
            profile={"name": value},
            recipient="user-1",
            urls={"unsubscribe": "https://example.org/u?a=1&b=2"},
        )
        variables = context.variables()
        expected = _liquid(source, variables, html=html, strict=False)
        assert render_string(source, context, html=html) == expected, (source, value)


def test_plain_outputs_take_the_shortcut_and_tags_do_not() -> None:
    assert _compiled("Hi {{ profile.name }}, {{ data.a.b }}", False, False).parts is not None
    assert _compiled("{% if x %}{{ x }}{% endif %}", False, False).parts is None
    assert _compiled("{{ x | upcase }}", False, False).parts is None
    assert _compiled("{{- x }}", False, False).parts is None


def test_strict_templates_still_fail_on_a_missing_variable() -> None:
    context = RenderContext(data={"present": "yes"}, profile={})
    assert render_string("{{ data.present }}", context, strict=True) == "yes"
    with pytest.raises(LiquidError):
        render_string("{{ data.absent }}", context, strict=True)
    with pytest.raises(LiquidError):
        _liquid("{{ data.absent }}", context.variables(), html=False, strict=True)
