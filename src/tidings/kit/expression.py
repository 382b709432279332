"""A small, safe expression language for conditions (`if`) over data and profile.

It reads like JavaScript, as Courier's conditions do: `data.plan == "pro" && !profile.muted`,
`data.total >= 100`, `profile.tags[0] === 'vip'`. It is parsed into closures by its own
parser; nothing is handed to Python's `eval`, and only these forms exist:

- literals: numbers, 'strings' and "strings", true, false, null, undefined;
- names from the context and member access: `a.b`, `a["b"]`, `a[0]`, `a.length`;
- `!`, unary `-`, `* / %`, `+ -`, `< <= > >=`, `== != === !==`, `&&`, `||`, parentheses.

A missing name or member is `undefined` (None), never an error, so conditions over optional
data are safe to write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Evaluator = Callable[[Mapping[str, Any]], Any]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
      | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||[!<>+\-*/%.()\[\]])
    )""",
    re.VERBOSE,
)

_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None, "undefined": None}
_BINDING = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "===": 3,
    "!==": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}


# Limits, so that neither parsing nor evaluating (closures calling closures) can exhaust the
# stack: a condition is short in practice.
MAX_EXPRESSION_LENGTH = 2000
MAX_TOKENS = 256
MAX_NESTING = 32


class ExpressionError(ValueError):
    """The expression cannot be parsed; the message says where."""


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"unexpected {text[position:].strip()[:10]!r} at {position}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _member(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(key) if isinstance(key, str) else None
    if isinstance(value, list | str):
        if key == "length":
            return len(value)
        if isinstance(key, int | float) and not isinstance(key, bool):
            index = int(key)
            return value[index] if 0 <= index < len(value) else None
    return None


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


def _compare(op: str, left: Any, right: Any) -> bool:
    numbers = (int, float)
    comparable = (
        isinstance(left, numbers)
        and isinstance(right, numbers)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    ) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return f"{'' if left is None else left}{'' if right is None else right}"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        return None
    return left / right if op == "/" else left % right


def _binary(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    if op == "&&":
        return lambda c: (lambda v: right(c) if truthy(v) else v)(left(c))
    if op == "||":
        return lambda c: (lambda v: v if truthy(v) else right(c))(left(c))
    if op in ("==", "==="):
        return lambda c: _equal(left(c), right(c))
    if op in ("!=", "!=="):
        return lambda c: not _equal(left(c), right(c))
    if op in ("<", "<=", ">", ">="):
        return lambda c: _compare(op, left(c), right(c))
    return lambda c: _arithmetic(op, left(c), right(c))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        if len(self.tokens) > MAX_TOKENS:
            raise ExpressionError(
                f"the expression has {len(self.tokens)} tokens; at most {MAX_TOKENS} are "
                "allowed: split the condition"
            )
        self.index = 0
        self.depth = 0

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(
                f"the expression nests deeper than {MAX_NESTING} levels (parentheses, "
                "brackets, ! and -): simplify it"
            )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"{self.text!r} ends early")
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r} but found {token[1]!r}")
        self.index += 1
        return token

    def parse(self) -> Evaluator:
        evaluator = self.expression(0)
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return evaluator

    def expression(self, min_binding: int) -> Evaluator:
        self.nested()
        try:
            return self._expression(min_binding)
        finally:
            self.depth -= 1

    def _expression(self, min_binding: int) -> Evaluator:
        left = self.unary()
        while True:
            token = self.peek()
            if token is None or token[0] != "op" or token[1] not in _BINDING:
                return left
            binding = _BINDING[token[1]]
            if binding <= min_binding:
                return left
            self.take()
            left = _binary(token[1], left, self.expression(binding))

    def unary(self) -> Evaluator:
        token = self.peek()
        if token in (("op", "!"), ("op", "-")):
            self.take()
            self.nested()
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if token == ("op", "!"):
                return lambda c: not truthy(operand(c))
            return lambda c: _arithmetic("-", 0, operand(c))
        return self.postfix(self.primary())

    def primary(self) -> Evaluator:
        kind, value = self.take()
        if kind == "number":
            number = float(value) if "." in value else int(value)
            return lambda c: number
        if kind == "string":
            text = _unquote(value)
            return lambda c: text
        if kind == "name":
            if value in _CONSTANTS:
                constant = _CONSTANTS[value]
                return lambda c: constant
            return lambda c: c.get(value)
        if value == "(":
            inner = self.expression(0)
            self.take(")")
            return inner
        raise ExpressionError(f"unexpected {value!r}")

    def postfix(self, target: Evaluator) -> Evaluator:
        while True:
            token = self.peek()
            if token == ("op", "."):
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise ExpressionError(f"expected a name after '.', found {name!r}")
                target = (lambda t, n: lambda c: _member(t(c), n))(target, name)
            elif token == ("op", "["):
                self.take()
                key = self.expression(0)
                self.take("]")
                target = (lambda t, k: lambda c: _member(t(c), k(c)))(target, key)
            else:
                return target


def truthy(value: Any) -> bool:
    """JavaScript truthiness: "", 0, null and false are false; [] and {} are true."""
    if isinstance(value, list | dict):
        return True
    return bool(value)


def compile_expression(text: str) -> Evaluator:
    """Parse once; raises ExpressionError with the position of the problem."""
    if not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"the expression is {len(text)} characters long; at most {MAX_EXPRESSION_LENGTH} "
            "are allowed"
        )
    return _Parser(text).parse()
