"""The rule language: conditions over a transaction, its features and its score, such as
``amount > 5000 and country not in customer_countries_30d``.

Parsed by a lark LALR grammar (below), type-checked against the fields a rule may use, and
compiled to nested Python closures. Nothing is ever passed to ``eval``: the only operations are
the ones this module implements. No Django import.

The language:
- literals: numbers (``5000``, ``0.3``), strings (``"online"``), ``true``/``false``, lists of
  literals (``["NG", "RU"]``);
- field names (``amount``, ``score``, ``m_risk_7d``, ``customer_countries_30d``…);
- arithmetic on numbers: ``+ - * /`` and unary ``-``; dividing by zero makes the comparison it
  is in false (a rule over undefined arithmetic does not match);
- comparisons: ``== != < <= > >=`` (ordering only between numbers), ``in`` and ``not in`` (a
  value in a list or a set field);
- ``and``, ``or``, ``not``, parentheses. The whole condition must be true or false.

Hostile input is bounded: at most ``MAX_LENGTH`` characters, nesting at most ``MAX_DEPTH``,
lists of at most ``MAX_LIST`` items, numbers of at most 15 digits before the point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

MAX_LENGTH = 2000
MAX_DEPTH = 40
MAX_LIST = 500

NUMBER, STRING, BOOL, STRINGS = "number", "string", "boolean", "list of strings"

GRAMMAR = r"""
start: expr
?expr: or_test
?or_test: and_test ("or" and_test)+ -> or_
        | and_test
?and_test: not_test ("and" not_test)+ -> and_
         | not_test
?not_test: "not" not_test -> not_
         | comparison
?comparison: arith COMPARE arith -> compare
           | arith "in" arith -> in_
           | arith "not" "in" arith -> not_in
           | arith
?arith: arith ADD term -> binary
      | term
?term: term MUL factor -> binary
     | factor
?factor: "-" factor -> negative
       | atom
?atom: NUMBER -> number
     | STRING -> string
     | "true" -> true
     | "false" -> false
     | NAME -> name
     | "[" [expr ("," expr)*] "]" -> list_
     | "(" expr ")"
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | "/"
NAME: /[a-z_][a-z0-9_]{0,63}/
NUMBER: /[0-9]{1,15}(\.[0-9]{1,8})?/
STRING: /"[^"\\\n]{0,200}"/ | /'[^'\\\n]{0,200}'/
%ignore /[ \t\r\n]+/
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


class ExpressionError(ValueError):
    """A condition that cannot be a rule, with where (1-based column) and why."""

    def __init__(self, message: str, column: int | None = None):
        self.message = message
        self.column = column
        super().__init__(f"{message} (at column {column})" if column else message)


@dataclass(frozen=True)
class Compiled:
    source: str
    fields: frozenset[str]  # the fields it reads: what scoring must provide
    evaluate: Callable[[Mapping[str, Any]], bool]


Value = Callable[[Mapping[str, Any]], Any]
Node = Tree[Token]


def _column(node: Node | Token) -> int | None:
    meta = getattr(node, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        column: int | None = meta.column
        return column
    return getattr(node, "column", None)


def _depth(tree: Node) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return deepest


def _undefined(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class _Compiler:
    def __init__(self, fields: Mapping[str, str]):
        self.fields = fields
        self.used: set[str] = set()

    def build(self, node: Node | Token) -> tuple[str, Value]:
        kind = node.data if isinstance(node, Tree) else node.type
        handler: Callable[[Any], tuple[str, Value]] = getattr(self, f"_{kind}")
        return handler(node)

    def _start(self, node: Node) -> tuple[str, Value]:
        return self.build(node.children[0])

    def _number(self, node: Node) -> tuple[str, Value]:
        value = float(str(node.children[0]))
        return NUMBER, lambda ctx: value

    def _string(self, node: Node) -> tuple[str, Value]:
        value = str(node.children[0])[1:-1]
        return STRING, lambda ctx: value

    def _true(self, node: Node) -> tuple[str, Value]:
        return BOOL, lambda ctx: True

    def _false(self, node: Node) -> tuple[str, Value]:
        return BOOL, lambda ctx: False

    def _name(self, node: Node) -> tuple[str, Value]:
        name = str(node.children[0])
        if name not in self.fields:
            raise ExpressionError(f"unknown field {name!r}", _column(node))
        self.used.add(name)
        return self.fields[name], lambda ctx: ctx[name]

    def _list_(self, node: Node) -> tuple[str, Value]:
        items = [child for child in node.children if child is not None]
        if len(items) > MAX_LIST:
            raise ExpressionError(
                f"a list holds at most {MAX_LIST} items (use a list of the lists feature)", _column(node)
            )
        built = [self.build(item) for item in items]
        if not all(isinstance(item, Tree) and item.data in ("string", "number") for item in items):
            raise ExpressionError("a list holds literal strings or numbers only", _column(node))
        kinds = {kind for kind, _ in built}
        if len(kinds) > 1:
            raise ExpressionError("a list mixes strings and numbers", _column(node))
        values = frozenset(fn({}) for _, fn in built)
        return ("list of numbers" if kinds == {NUMBER} else STRINGS), lambda ctx: values

    def _negative(self, node: Node) -> tuple[str, Value]:
        kind, fn = self.build(node.children[0])
        self._expect(kind, NUMBER, node.children[0], "'-'")
        return NUMBER, lambda ctx: -fn(ctx)

    def _binary(self, node: Node) -> tuple[str, Value]:
        left, op, right = node.children
        lk, lf = self.build(left)
        rk, rf = self.build(right)
        self._expect(lk, NUMBER, left, f"'{op}'")
        self._expect(rk, NUMBER, right, f"'{op}'")
        if op == "+":
            return NUMBER, lambda ctx: lf(ctx) + rf(ctx)
        if op == "-":
            return NUMBER, lambda ctx: lf(ctx) - rf(ctx)
        if op == "*":
            return NUMBER, lambda ctx: lf(ctx) * rf(ctx)

        def divide(ctx: Mapping[str, Any]) -> float:
            denominator = rf(ctx)
            return lf(ctx) / denominator if denominator else math.nan

        return NUMBER, divide

    def _compare(self, node: Node) -> tuple[str, Value]:
        left, op, right = node.children
        lk, lf = self.build(left)
        rk, rf = self.build(right)
        if lk != rk or lk not in (NUMBER, STRING, BOOL):
            raise ExpressionError(f"cannot compare a {lk} with a {rk} using '{op}'", _column(node))
        if op not in ("==", "!=") and lk != NUMBER:
            raise ExpressionError(f"'{op}' compares numbers; this is a {lk}", _column(node))
        compare: Callable[[Any, Any], bool] = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }[str(op)]

        def evaluate(ctx: Mapping[str, Any]) -> bool:
            a, b = lf(ctx), rf(ctx)
            if _undefined(a) or _undefined(b):
                return False
            return bool(compare(a, b))

        return BOOL, evaluate

    def _membership(self, node: Node, negate: bool) -> tuple[str, Value]:
        left, right = node.children
        lk, lf = self.build(left)
        rk, rf = self.build(right)
        expected = {STRING: STRINGS, NUMBER: "list of numbers"}.get(lk)
        if rk != expected:
            raise ExpressionError(
                f"'in' needs a {lk} on the left and a list of them on the right, not a {rk}", _column(node)
            )
        if negate:
            return BOOL, lambda ctx: lf(ctx) not in rf(ctx)
        return BOOL, lambda ctx: lf(ctx) in rf(ctx)

    def _in_(self, node: Node) -> tuple[str, Value]:
        return self._membership(node, negate=False)

    def _not_in(self, node: Node) -> tuple[str, Value]:
        return self._membership(node, negate=True)

    def _not_(self, node: Node) -> tuple[str, Value]:
        kind, fn = self.build(node.children[0])
        self._expect(kind, BOOL, node.children[0], "'not'")
        return BOOL, lambda ctx: not fn(ctx)

    def _logical(self, node: Node, combine: Callable[..., bool]) -> tuple[str, Value]:
        parts = []
        for child in node.children:
            kind, fn = self.build(child)
            self._expect(kind, BOOL, child, f"'{node.data.rstrip('_')}'")
            parts.append(fn)
        return BOOL, lambda ctx: combine(part(ctx) for part in parts)

    def _and_(self, node: Node) -> tuple[str, Value]:
        return self._logical(node, all)

    def _or_(self, node: Node) -> tuple[str, Value]:
        return self._logical(node, any)

    @staticmethod
    def _expect(kind: str, wanted: str, node: Node | Token, where: str) -> None:
        if kind != wanted:
            raise ExpressionError(f"{where} needs a {wanted}, not a {kind}", _column(node))


def compile_expression(source: str, fields: Mapping[str, str]) -> Compiled:
    """Parse, check and compile ``source`` against ``fields`` (name → type). Raises
    ``ExpressionError`` saying what is wrong and where."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the condition is empty")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the condition is longer than {MAX_LENGTH} characters")
    nesting = deepest = 0
    for char in source:
        nesting += char in "(["
        nesting -= char in ")]"
        deepest = max(deepest, nesting)
    if deepest > MAX_DEPTH:
        raise ExpressionError(f"the condition nests deeper than {MAX_DEPTH} levels")
    try:
        tree = _PARSER.parse(source)
    except UnexpectedCharacters as exc:
        position = exc.pos_in_stream or 0  # always set for this error
        raise ExpressionError(f"unexpected character {source[position]!r}", exc.column) from None
    except UnexpectedEOF:
        raise ExpressionError("the condition ends too early") from None
    except UnexpectedToken as exc:
        token = exc.token
        if token.type == "$END":
            raise ExpressionError("the condition ends too early") from None
        raise ExpressionError(f"unexpected {str(token)!r}", getattr(token, "column", None)) from None
    except UnexpectedInput as exc:  # pragma: no cover - the subclasses above are the ones raised
        raise ExpressionError("cannot read the condition", getattr(exc, "column", None)) from None
    if _depth(tree) > 2 * MAX_DEPTH:
        raise ExpressionError(f"the condition nests deeper than {MAX_DEPTH} levels (or chains too many operators)")
    compiler = _Compiler(fields)
    kind, fn = compiler.build(tree)
    if kind != BOOL:
        raise ExpressionError(f"a condition must be true or false; this is a {kind}", 1)

    def evaluate(ctx: Mapping[str, Any]) -> bool:
        return bool(fn(ctx))

    return Compiled(source=source, fields=frozenset(compiler.used), evaluate=evaluate)
