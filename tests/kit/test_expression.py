from __future__ import annotations

import pytest

from tidings.kit.expression import ExpressionError, compile_expression, truthy

CONTEXT = {
    "data": {"plan": "pro", "total": 120, "tags": ["vip", "eu"], "zero": 0, "empty": ""},
    "profile": {"muted": False, "name": "Ada", "address": {"city": "Lyon"}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('data.plan == "pro" && !profile.muted', True),
        ("data.total >= 100", True),
        ("data.total > 100 && data.total < 200", True),
        ("data.tags[0] === 'vip'", True),
        ("data.tags.length", 2),
        ('profile.address["city"]', "Lyon"),
        ("data.missing.deeper", None),
        ("data.missing || 'fallback'", "fallback"),
        ("data.zero || data.empty", ""),
        ("(1 + 2) * 3 - 4 / 2", 7.0),
        ("-data.total", -120),
        ('"a" + profile.name', "aAda"),
        ("data.total == '120'", False),
        ("data.plan != 'free'", True),
        ("true && null", None),
        ("undefined == null", True),
        ("data.total % 7", 1),
        ("1 / 0", None),
        ("data.tags > 1", False),
    ],
)
def test_evaluates_like_javascript_conditions(text: str, expected: object) -> None:
    assert compile_expression(text)(CONTEXT) == expected


@pytest.mark.parametrize(
    "text",
    ["", "data.", "data.plan ==", "(data.plan", "data.plan ; 1", "import os", "a b", "data[1"],
)
def test_bad_expressions_raise_with_a_reason(text: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(text)


def test_no_python_escape_hatches() -> None:
    for text in ("__import__", "data.__class__", "profile.__dict__"):
        assert compile_expression(text)(CONTEXT) is None


def test_truthiness_follows_javascript() -> None:
    assert truthy([]) is True
    assert truthy({}) is True
    assert truthy(0) is False
    assert truthy("") is False
    assert truthy(None) is False
