"""The query line over the run table (`diffusion.n_T <= 256 and best > 0.8 or tag:baseline`), run by SQLite.

A small recursive-descent parser turns the text into a tree of conditions, and `where_clause` compiles the
tree into one SQLAlchemy WHERE clause, so a filter never loads the runs into Python.

    query      := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | atom
    atom       := "(" or_expr ")" | "tag" ":" value | name op value | name "in" in_rest
    in_rest    := value ".." value | "(" value ("," value)* ")"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="

Names: `kind`, `status`, `name`, `id`, `data`, `created` (Unix seconds), `best` (the run's best accuracy) and
`loss` (its last training loss) are the run row's columns, and the metrics of db/metrics.py (`fid`, `best_t`,
`gain_pixels`, ...) too; any other name is a key of the run's resolved
spec, looked up as `$.config.<key>`, else `$.options.<key>` (the run's setting row, db/settings.py), else
`$.<key>` (the first that exists), so
`diffusion.n_T` is the config's noise levels and `lr` the training option. A bare number is a number and a
quoted one ('256') a string; `true`/`false` are 1/0, as SQLite's json_extract gives them. A condition on a
value a run lacks is false for it (`!=` true), so `not` is always the complement. Ranges include both ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, literal, not_, or_, select

from ddae_core.rundir import JobKind
from ddae_core.rundir.errors import UserError

from .metrics import METRICS
from .models import Run, RunSetting
from .records import STATUSES

COLUMNS: dict[str, Any] = {
    "kind": Run.kind, "status": Run.status, "name": Run.name, "id": Run.id, "data": Run.data,
    "created": Run.created, "best": Run.best_accuracy, "loss": Run.last_loss,
}
CHOICES = {"kind": tuple(JobKind), "status": STATUSES}
OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
KEYWORDS = ("and", "or", "not", "in")
NAMES_HINT = "a name (kind, status, name, best, loss, created, tag:X or a spec key such as diffusion.n_T)"

Value = str | float | int

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w]))
  | (?P<word>[A-Za-z_][\w\-]*(?:\.[\w\-]+)*)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<punct>\.\.|<=|>=|!=|==|[=<>(),:])
""", re.VERBOSE)


class QueryError(UserError):
    """A malformed query: one sentence naming the place, then the query with a caret under it."""

    def __init__(self, sentence: str, text: str, column: int):
        self.sentence, self.text, self.column = sentence, text, column
        super().__init__(f"{sentence}\n  {text}\n  {' ' * (column - 1)}^")


@dataclass(frozen=True)
class Token:
    kind: str        # number | word | string | punct | end
    text: str
    column: int      # 1-based
    value: Value = ""


@dataclass(frozen=True)
class Compare:
    name: str
    op: str
    value: Value


@dataclass(frozen=True)
class InRange:
    name: str
    low: Value
    high: Value


@dataclass(frozen=True)
class InList:
    name: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Tag:
    tag: str


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str                      # and | or
    operands: tuple[Node, ...]


Node = Compare | InRange | InList | Tag | Not | BoolOp


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] in "'\"":
                raise QueryError(f"the quote at column {pos + 1} is never closed", text, pos + 1)
            raise QueryError(f"unexpected character {text[pos]!r} at column {pos + 1}", text, pos + 1)
        kind, raw = match.lastgroup or "", match.group()
        if kind == "number":
            number = float(raw)
            tokens.append(Token(kind, raw, pos + 1, int(number) if number.is_integer() and "." not in raw
                                and "e" not in raw.lower() else number))
        elif kind == "string":
            tokens.append(Token(kind, raw, pos + 1, raw[1:-1]))
        elif kind == "punct":
            tokens.append(Token(kind, "=" if raw == "==" else raw, pos + 1))
        elif kind == "word":
            tokens.append(Token(kind, raw, pos + 1, raw))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.at = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def _is(self, text: str) -> bool:
        token = self.token
        if token.kind == "word":
            return token.text.lower() == text
        return token.kind == "punct" and token.text == text

    def _take(self) -> Token:
        token = self.token
        self.at += 1
        return token

    def fail(self, expected: str, token: Token | None = None) -> QueryError:
        token = token or self.token
        where = "the end of the query" if token.kind == "end" else f"{token.text!r}"
        return QueryError(f"expected {expected} at column {token.column}, found {where}", self.text, token.column)

    def query(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "end":
            raise self.fail("'and', 'or' or the end of the query")
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self._is("or"):
            self._take()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self._is("and"):
            self._take()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_expr(self) -> Node:
        if self._is("not"):
            self._take()
            return Not(self.not_expr())
        return self.atom()

    def atom(self) -> Node:
        if self._is("("):
            opening = self._take()
            node = self.or_expr()
            if not self._is(")"):
                raise self.fail(f"')' to close the '(' of column {opening.column},")
            self._take()
            return node
        if self.token.kind != "word" or self.token.text.lower() in KEYWORDS:
            raise self.fail(NAMES_HINT)
        name = self._take()
        if name.text == "tag":
            if not self._is(":"):
                raise self.fail("':' and a tag after 'tag' (tag:baseline)")
            self._take()
            parts = [str(self.value("a tag after 'tag:'")[0])]
            while self._is(":"):                    # a tag may hold colons itself: tag:sweep:noise-T
                self._take()
                parts.append(str(self.value("the rest of the tag after ':'")[0]))
            return Tag(":".join(parts))
        if self._is("in"):
            return self.in_clause(name)
        if self.token.kind == "punct" and self.token.text in OPERATORS:
            op = self._take().text
            value, token = self.value(f"a value after '{op}'")
            self.check_choice(name.text, value, token)
            return Compare(name.text, op, value)
        raise self.fail(f"a comparison ({' '.join(OPERATORS)}) or 'in' after {name.text!r}")

    def in_clause(self, name: Token) -> Node:
        self._take()
        if self._is("("):
            self._take()
            values = [self.value("a value in the list")]
            while self._is(","):
                self._take()
                values.append(self.value("a value after ','"))
            if not self._is(")"):
                raise self.fail("',' or ')' to end the list")
            self._take()
            for value, token in values:
                self.check_choice(name.text, value, token)
            return InList(name.text, tuple(v for v, _ in values))
        low, _ = self.value("a range (0.8..0.9) or a list ((train, probe)) after 'in'")
        if not self._is(".."):
            raise self.fail("'..' and the range's upper end")
        self._take()
        high, _ = self.value("a value after '..'")
        return InRange(name.text, low, high)

    def value(self, expected: str) -> tuple[Value, Token]:
        token = self.token
        if token.kind in ("number", "string") or (token.kind == "word" and token.text.lower() not in KEYWORDS):
            self._take()
            if token.kind == "word" and token.text.lower() in ("true", "false"):
                return int(token.text.lower() == "true"), token
            return token.value, token
        raise self.fail(expected)

    def check_choice(self, name: str, value: Value, token: Token) -> None:
        allowed = CHOICES.get(name)
        if allowed is not None and value not in allowed:
            raise QueryError(f"unknown {name} {value!r} at column {token.column}; use one of "
                             f"{', '.join(allowed)}", self.text, token.column)


def parse(text: str) -> Node | None:
    """The tree of a query; None for an empty one. QueryError names the place of a mistake."""
    if not text.strip():
        return None
    return _Parser(text).query()


def _json_path(root: str, key: str) -> str:
    return root + "".join(f'."{part}"' for part in key.split("."))


def operand(name: str) -> Any:
    """The SQL expression a name stands for: a run column, else the spec key under config, options or the top."""
    if name in COLUMNS:
        return COLUMNS[name]
    if name in METRICS:
        return METRICS[name].expression
    # The setting's row (db/settings.py: config, then options) is one primary-key lookup; parsing the spec's
    # JSON is left for a key at its top level (`options.lr`, `device.request`), where the rows do not look.
    setting = (select(func.coalesce(RunSetting.number, RunSetting.text))
               .where(RunSetting.run == Run.id, RunSetting.key == name).scalar_subquery())
    return func.coalesce(setting, func.json_extract(Run.spec, _json_path("$", name)))


def has_tag(tag: str) -> Any:
    """SQL true when the run's JSON list of tags holds `tag`."""
    each = func.json_each(Run.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def _compare(column: Any, op: str, value: Value) -> Any:
    if op == "!=":
        return or_(column.is_(None), column != value)
    test = {"=": column == value, "<": column < value, "<=": column <= value,
            ">": column > value, ">=": column >= value}[op]
    return and_(column.is_not(None), test)


def compile_node(node: Node) -> Any:
    """The WHERE clause of a query's tree; never NULL, so `not` is the complement."""
    if isinstance(node, Compare):
        return _compare(operand(node.name), node.op, node.value)
    if isinstance(node, InRange):
        column = operand(node.name)
        return and_(column.is_not(None), column.between(node.low, node.high))
    if isinstance(node, InList):
        column = operand(node.name)
        return and_(column.is_not(None), column.in_(node.values))
    if isinstance(node, Tag):
        return has_tag(node.tag)
    if isinstance(node, Not):
        return not_(compile_node(node.operand))
    parts = [compile_node(n) for n in node.operands]
    return and_(*parts) if node.op == "and" else or_(*parts)


def where_clause(text: str | None) -> Any:
    """The WHERE clause of a query line, or None for no query. QueryError names the place of a mistake."""
    tree = parse(text or "")
    return None if tree is None else compile_node(tree)


