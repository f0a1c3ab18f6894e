"""The rule query language: text -> a Condition tree. Pure; no I/O.

    query    := or
    or       := and ("OR" and)*
    and      := unary (["AND"] unary)*          adjacent terms are ANDed
    unary    := "NOT" unary | near
    near     := primary ("NEAR/" N primary)*     both sides words, phrases or lists
    primary  := "(" or ")" | SCOPE ":" primary | "phrase" | word | prefix* | @list | /regex/flags

Operators are upper-case (a lower-case "and" is a word). Scopes: title, summary, content,
article, text (= summary, content and article), link, author, category; and the non-text
scopes feed, tag (alias source) and domain. Errors carry the 1-based column of the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from watcher.errors import one_line
from watcher.fold import fold
from watcher.model import DEFAULT_FIELDS, And, Condition, Meta, Near, Not, Or, Regex, Term

TEXT_SCOPES: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "summary": ("summary",),
    "content": ("content",),
    "article": ("article",),
    "text": ("summary", "content", "article"),
    "link": ("link",),
    "author": ("author",),
    "category": ("category",),
}
META_SCOPES = {"feed": "feed", "tag": "tag", "source": "tag", "domain": "domain"}
_OPERATORS = {"AND", "OR", "NOT"}


class QueryError(ValueError):
    def __init__(self, message: str, column: int):
        message = one_line(message)  # it quotes the query, which may span lines
        super().__init__(message)
        self.message = message
        self.column = column  # 1-based


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "(" ")" PHRASE WORD LIST REGEX AND OR NOT NEAR SCOPE EOF
    text: str
    column: int  # 1-based
    value: str = ""
    number: int = 0


_WORD = re.compile(r"[^\s()\"/]+")
_NEAR = re.compile(r"NEAR/(\d+)")
_SCOPE = re.compile(r"([a-z]+):")


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        col = i + 1
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(Token(ch, ch, col))
            i += 1
        elif ch == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QueryError('unterminated phrase: missing closing "', col)
            value = query[i + 1 : end]
            i = end + 1
            if i < n and query[i] == "*":  # "strategic market"* is a prefix phrase too
                value += "*"
                i += 1
            if not value.strip(" *"):
                raise QueryError("empty phrase", col)
            tokens.append(Token("PHRASE", query[col - 1 : i], col, value))
        elif ch == "/":
            j = i + 1
            while j < n and query[j] != "/":
                j += 2 if query[j] == "\\" else 1
            if j >= n:
                raise QueryError("unterminated regular expression: missing closing /", col)
            flags_end = j + 1
            while flags_end < n and query[flags_end].isalpha():
                flags_end += 1
            flags = query[j + 1 : flags_end]
            if set(flags) - {"i"}:
                raise QueryError(f'unknown regex flag "{flags}" (only "i" is supported)', j + 2)
            tokens.append(Token("REGEX", query[i:flags_end], col, query[i + 1 : j], int("i" in flags)))
            i = flags_end
        elif ch == "@":
            m = _WORD.match(query, i + 1)
            if not m:
                raise QueryError("expected a list name after @", col)
            tokens.append(Token("LIST", query[i : m.end()], col, m.group(0)))
            i = m.end()
        else:
            near = _NEAR.match(query, i)
            scope = _SCOPE.match(query, i)
            word = _WORD.match(query, i)
            if near and (near.end() == n or not _WORD.match(query, near.end())):
                tokens.append(Token("NEAR", near.group(0), col, number=int(near.group(1))))
                i = near.end()
            elif scope and scope.group(1) in TEXT_SCOPES | META_SCOPES:
                tokens.append(Token("SCOPE", scope.group(0), col, scope.group(1)))
                i = scope.end()
            elif word:
                text = word.group(0)
                kind = text if text in _OPERATORS else "WORD"
                if text.startswith("NEAR"):
                    raise QueryError("NEAR needs a distance in words, like NEAR/20", col)
                tokens.append(Token(kind, text, col, text))
                i = word.end()
            else:  # pragma: no cover - _WORD matches any other character
                raise QueryError(f"unexpected {ch!r}", col)
    tokens.append(Token("EOF", "", n + 1))
    return tokens


ListResolver = Callable[[str, int], Sequence[str]]


class _Parser:
    def __init__(self, query: str, resolve_list: ListResolver):
        self.tokens = tokenize(query)
        self.pos = 0
        self.resolve_list = resolve_list

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Condition:
        if self.tok.kind == "EOF":
            raise QueryError("empty query", 1)
        node = self.or_()
        if self.tok.kind == ")":
            raise QueryError('unbalanced parenthesis: ")" without "("', self.tok.column)
        if self.tok.kind != "EOF":  # pragma: no cover - and_() consumes every term
            raise QueryError(f'unexpected "{self.tok.text}"', self.tok.column)
        return node

    def or_(self) -> Condition:
        children = [self.and_()]
        while self.tok.kind == "OR":
            self.take()
            children.append(self.and_())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_(self) -> Condition:
        children = [self.unary()]
        while True:
            if self.tok.kind == "AND":
                self.take()
            elif self.tok.kind in ("OR", ")", "EOF"):
                break
            children.append(self.unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self) -> Condition:
        if self.tok.kind == "NOT":
            self.take()
            return Not(self.unary())
        return self.near()

    def near(self) -> Condition:
        left = self.primary(DEFAULT_FIELDS)
        while self.tok.kind == "NEAR":
            op = self.take()
            right = self.primary(DEFAULT_FIELDS)
            if not isinstance(left, Term) or not isinstance(right, Term):
                raise QueryError("NEAR joins words, phrases or lists, not expressions", op.column)
            if op.number < 1:
                raise QueryError("NEAR distance must be at least 1", op.column)
            fields = tuple(f for f in left.fields if f in right.fields) or left.fields
            left_t = Term(left.phrases, fields, left.label)
            right_t = Term(right.phrases, fields, right.label)
            return Near(left_t, right_t, op.number)
        return left

    def primary(self, fields: tuple[str, ...]) -> Condition:
        tok = self.take()
        if tok.kind == "(":
            inner = self._scoped_group(fields)
            if self.tok.kind != ")":
                raise QueryError('unbalanced parenthesis: "(" is never closed', tok.column)
            self.take()
            return inner
        if tok.kind == "SCOPE":
            if tok.value in META_SCOPES:
                return self._meta(META_SCOPES[tok.value], tok)
            return self.primary(TEXT_SCOPES[tok.value])
        if tok.kind in ("PHRASE", "WORD"):
            body = tok.value[:-1] if tok.value.endswith("*") else tok.value
            if "*" in body:
                raise QueryError('"*" is only allowed at the end of a word or phrase (a prefix)', tok.column)
            if not fold(body):
                raise QueryError(f'"{tok.text}" has no letters or digits to match', tok.column)
            return Term((tok.value,), fields, tok.value)
        if tok.kind == "LIST":
            return Term(tuple(self.resolve_list(tok.value, tok.column)), fields, f"@{tok.value}")
        if tok.kind == "REGEX":
            try:
                re.compile(tok.value)
            except re.error as exc:
                raise QueryError(f"bad regular expression: {exc}", tok.column + 1 + (exc.pos or 0)) from None
            return Regex(tok.value, bool(tok.number), fields)
        if tok.kind == "EOF":
            raise QueryError("query ends where a term was expected", tok.column)
        if tok.kind == ")":
            raise QueryError('unbalanced parenthesis: ")" without "("', tok.column)
        raise QueryError(f'"{tok.text}" needs a term before and after it', tok.column)

    def _scoped_group(self, fields: tuple[str, ...]) -> Condition:
        node = self.or_()
        return node if fields == DEFAULT_FIELDS else _rescope(node, fields)

    def _meta(self, kind: str, scope: Token) -> Meta:
        operand = self.primary(DEFAULT_FIELDS)
        values: list[str] = []
        for term in operand.children if isinstance(operand, Or) else (operand,):
            if not isinstance(term, Term):
                raise QueryError(f"{scope.value}: takes names, or (name OR name)", scope.column)
            values.extend(term.phrases)
        return Meta(kind, tuple(v.lower() for v in values))


def _rescope(node: Condition, fields: tuple[str, ...]) -> Condition:
    """Apply a scope to every text condition inside a parenthesised group."""
    if isinstance(node, Term):
        return Term(node.phrases, fields, node.label) if node.fields == DEFAULT_FIELDS else node
    if isinstance(node, Regex):
        return Regex(node.pattern, node.ignore_case, fields) if node.fields == DEFAULT_FIELDS else node
    if isinstance(node, Near):
        return Near(
            _rescope(node.left, fields),  # type: ignore[arg-type]
            _rescope(node.right, fields),  # type: ignore[arg-type]
            node.distance,
        )
    if isinstance(node, And):
        return And(tuple(_rescope(c, fields) for c in node.children))
    if isinstance(node, Or):
        return Or(tuple(_rescope(c, fields) for c in node.children))
    if isinstance(node, Not):
        return Not(_rescope(node.child, fields))
    return node


def parse_query(query: str, resolve_list: ListResolver) -> Condition:
    """Parse a query. Raises QueryError with the column of the problem."""
    return _Parser(query, resolve_list).parse()


def caret(query: str, column: int) -> str:
    """Two lines showing the query and a caret under ``column``, for error output."""
    return f"    {query}\n    {' ' * (column - 1)}^"
