"""Select files by tags and by a safe expression on descriptors (``dataselect``).

The expression language is the one of DRAGONS' ``dataselect --expr``::

    filter_name=="i"
    (object=="starfield" and exposure_time==10.)
    observation_class=="science" and not ut_date<"2017-06-14"

It is parsed here by a small tokenizer and recursive-descent parser into a
tree that is evaluated on a file's headers; user text is never given to
``eval``.  The grammar is::

    expression := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)*
    operand    := DESCRIPTOR | NUMBER | STRING | "True" | "False" | "(" or_expr ")"

Comparisons chain as in Python (``1 < airmass < 1.5``).  Semantics follow
DRAGONS' non-strict defaults:

* ``exposure_time == x`` is true when the two agree to 1 % (``isclose`` with
  ``rel_tol=1e-2``); ``!=`` is its negation.
* ``ut_date`` and ``ut_datetime`` compare with date strings: ``'2017-06-14'``
  or ``'2017-06-14 05:30:00'`` (a date alone means midnight for
  ``ut_datetime``).
* ``filter_name`` is compared in its short form (``'i'``, not ``'i_G0302'``),
  which is what the descriptor returns.
* Per-extension descriptors (``gain``, ``read_noise``, ``data_section`` ...)
  are compared through the value of their **first** extension; sections
  compare as their FITS strings (``data_section=="[1:256,1:2112]"``).
* A descriptor without a value (e.g. no ``AIRMASS``) is equal to nothing and
  makes every ordering comparison false.

Files that cannot be read, or whose headers lack a keyword a descriptor
needs, are skipped and reported (see :func:`select_data`).
"""
from __future__ import annotations

import datetime as _dt
import keyword
import logging
import math
import operator
import os
import re
from dataclasses import dataclass

from .errors import ExpressionError, FileProblem
from .fitsheader import header_values
from .gmos.descriptors import DESCRIPTORS, descriptor_names, descriptor_value
from .gmos.tags import tags_of
from .sections import Section

__all__ = ["Expression", "expr_parser", "select_data", "selection_tags", "MAX_EXPRESSION_LENGTH", "MAX_NESTING"]

log = logging.getLogger(__name__)

#: Longest expression accepted, in characters.
MAX_EXPRESSION_LENGTH = 2000
#: Deepest nesting of parentheses / ``not`` accepted.
MAX_NESTING = 50
#: Relative tolerance of ``exposure_time==x`` (DRAGONS' ``isclose``).
EXPOSURE_TIME_RTOL = 1e-2

_ALLOWED = ("descriptor names, numbers, quoted strings, True, False, "
            "== != < <= > >=, and, or, not, and parentheses")

_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"[^"\\]*"|'[^'\\]*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|-)
""", re.VERBOSE | re.ASCII)   # ASCII: '1\u0660' is not the number 10

_REFUSED_CHARS = {
    ".": "attribute access ('.') is not allowed",
    "[": "subscripts ('[') are not allowed",
    "]": "subscripts (']') are not allowed",
    "=": "a single '=' is not allowed (use '==' to compare)",
    "!": "'!' is only allowed in '!='",
    '"': "unterminated string (or backslash escape, which is not allowed)",
    "'": "unterminated string (or backslash escape, which is not allowed)",
    **{c: f"arithmetic and other operators ({c!r}) are not allowed" for c in "+*/%@&|^~"},
    **{c: f"{c!r} is not allowed" for c in ",:;{}`$#\\"},
}

_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
_KEYWORDS = {"and", "or", "not", "True", "False"}


@dataclass(frozen=True)
class _Token:
    kind: str    # 'number', 'string', 'name', 'op', 'end'
    text: str
    pos: int


def _tokenize(text: str) -> list:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            char = text[pos]
            what = _REFUSED_CHARS.get(char, f"the character {char!r} is not allowed")
            raise ExpressionError(f"{what} (position {pos + 1} of the expression); "
                                  f"allowed are {_ALLOWED}")
        kind = match.lastgroup
        word = match.group()
        if kind == "name" and word not in _KEYWORDS and keyword.iskeyword(word):
            raise ExpressionError(f"'{word}' is not allowed (position {pos + 1} of the "
                                  f"expression); allowed are {_ALLOWED}")
        if kind == "name" and word.startswith("__"):
            raise ExpressionError(f"names starting with '__' are not allowed ({word!r}); "
                                  f"allowed are {_ALLOWED}")
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# -- the expression tree ------------------------------------------------------

class _Node:
    is_bool = False

    def evaluate(self, context):
        raise NotImplementedError


class _Literal(_Node):
    def __init__(self, value):
        self.value = value
        self.is_bool = isinstance(value, bool)

    def evaluate(self, context):
        return self.value


class _DescriptorRef(_Node):
    def __init__(self, name):
        self.name = name

    def evaluate(self, context):
        return context.value(self.name)


class _Not(_Node):
    is_bool = True

    def __init__(self, operand):
        self.operand = operand

    def evaluate(self, context):
        return not self.operand.evaluate(context)


class _BoolOp(_Node):
    is_bool = True

    def __init__(self, op, operands):
        self.op = op
        self.operands = operands

    def evaluate(self, context):
        if self.op == "and":
            return all(node.evaluate(context) for node in self.operands)
        return any(node.evaluate(context) for node in self.operands)


class _Compare(_Node):
    """A (possibly chained) comparison; literals next to dates are converted at parse time."""

    is_bool = True

    def __init__(self, operands, ops):
        self.operands = operands
        self.ops = ops
        # exposure_time equality is tolerant (DRAGONS' isclose), pair by pair
        timed = [isinstance(n, _DescriptorRef) and n.name == "exposure_time" for n in operands]
        self.tolerant = [a or b for a, b in zip(timed, timed[1:])]

    def evaluate(self, context):
        left = self.operands[0].evaluate(context)
        for op, node, tolerant in zip(self.ops, self.operands[1:], self.tolerant):
            right = node.evaluate(context)
            if not _compare(op, left, right, tolerant):
                return False
            left = right
        return True


def _compare(op, left, right, tolerant) -> bool:
    if left is None or right is None:        # a descriptor without a value equals nothing
        return op == "!="
    if tolerant and op in ("==", "!=") and _is_number(left) and _is_number(right):
        close = math.isclose(left, right, rel_tol=EXPOSURE_TIME_RTOL)
        return close if op == "==" else not close
    if op in ("==", "!="):
        return _COMPARE[op](left, right)
    if _is_number(left) != _is_number(right) or type(left) is bool or type(right) is bool:
        raise ExpressionError(f"cannot compare {left!r} with {right!r} using {op}: "
                              "order comparisons need two numbers, two strings or two dates")
    try:
        return _COMPARE[op](left, right)
    except TypeError:
        raise ExpressionError(f"cannot compare {left!r} with {right!r} using {op}") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- parser -------------------------------------------------------------------

_DATE_DESCRIPTORS = {"ut_date": "date", "ut_datetime": "datetime"}


def _date_literal(kind, text):
    try:
        if kind == "date":
            return _dt.date.fromisoformat(text.strip())
        value = _dt.datetime.fromisoformat(text.strip())
        return value.replace(tzinfo=None)
    except ValueError:
        example = "'2017-06-14'" if kind == "date" else "'2017-06-14 05:30:00' or '2017-06-14'"
        raise ExpressionError(f"{text!r} is not a valid {kind}; write it like {example}") from None


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0
        self.names = set()

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def _advance(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def _error(self, message, token=None):
        token = token or self.token
        where = "at the end" if token.kind == "end" else f"at position {token.pos + 1} ({token.text!r})"
        return ExpressionError(f"{message} {where} of the expression; allowed are {_ALLOWED}")

    def _enter(self):
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(f"expression nested too deeply (more than {MAX_NESTING} levels "
                                  "of parentheses or 'not')")

    def parse(self) -> _Node:
        node = self._or()
        if self.token.kind == "op" and self.token.text == "-":
            raise self._error("arithmetic is not allowed")
        if self.token.kind != "end":
            raise self._error("unexpected text")
        if not node.is_bool:
            raise ExpressionError("the expression must be a condition that is True or False, "
                                  'e.g. filter_name=="i" (a descriptor alone is not a condition)')
        return node

    def _is_word(self, word) -> bool:
        return self.token.kind == "name" and self.token.text == word

    def _bool_operands(self, op, sub):
        operands = [sub()]
        while self._is_word(op):
            self._advance()
            operands.append(sub())
        if len(operands) == 1:
            return operands[0]
        for node in operands:
            if not node.is_bool:
                raise ExpressionError(f"each side of '{op}' must be a condition such as "
                                      'object=="starfield"')
        return _BoolOp(op, operands)

    def _or(self):
        return self._bool_operands("or", self._and)

    def _and(self):
        return self._bool_operands("and", self._not)

    def _not(self):
        if self._is_word("not"):
            self._advance()
            self._enter()
            operand = self._not()
            self.depth -= 1
            if not operand.is_bool:
                raise ExpressionError("'not' must be followed by a condition such as "
                                      'object=="starfield"')
            return _Not(operand)
        return self._comparison()

    def _comparison(self):
        operands, ops = [self._operand()], []
        while self.token.kind == "op" and self.token.text in _COMPARE:
            ops.append(self._advance().text)
            operands.append(self._operand())
        if not ops:
            return operands[0]
        self._convert_dates(operands)
        return _Compare(operands, ops)

    @staticmethod
    def _convert_dates(operands):
        for i, node in enumerate(operands):
            if not isinstance(node, _DescriptorRef) or node.name not in _DATE_DESCRIPTORS:
                continue
            kind = _DATE_DESCRIPTORS[node.name]
            for j in (i - 1, i + 1):
                if 0 <= j < len(operands) and isinstance(operands[j], _Literal) \
                        and isinstance(operands[j].value, str):
                    operands[j] = _Literal(_date_literal(kind, operands[j].value))

    def _operand(self):
        token = self.token
        if token.kind == "op" and token.text == "(":
            self._advance()
            self._enter()
            node = self._or()
            self.depth -= 1
            if not (self.token.kind == "op" and self.token.text == ")"):
                raise self._error("expected ')'")
            self._advance()
            return node
        if token.kind == "op" and token.text == "-":
            self._advance()
            if self.token.kind != "number":
                raise self._error("'-' may only precede a number")
            return _Literal(-self._number(self._advance()))
        if token.kind == "number":
            return _Literal(self._number(self._advance()))
        if token.kind == "string":
            return _Literal(self._advance().text[1:-1])
        if token.kind == "name":
            return self._name(self._advance())
        raise self._error("expected a descriptor, a value or '('")

    @staticmethod
    def _number(token):
        text = token.text
        return float(text) if any(c in text for c in ".eE") else int(text)

    def _name(self, token):
        name = token.text
        if name in ("True", "False"):
            return _Literal(name == "True")
        if name in _KEYWORDS:
            raise self._error(f"'{name}' cannot be used here", token)
        nxt = self.token
        if nxt.kind == "op" and nxt.text == "(":
            hint = (f'; write the descriptor name alone, e.g. {name}==...' if name in DESCRIPTORS
                    else "")
            raise ExpressionError(f"function calls are not allowed ({name}(...)){hint}; "
                                  f"allowed are {_ALLOWED}")
        if name not in DESCRIPTORS:
            raise ExpressionError(f"unknown descriptor {name!r}; valid descriptors are: "
                                  + ", ".join(descriptor_names()))
        self.names.add(name)
        return _DescriptorRef(name)


# -- public API ---------------------------------------------------------------

class _FileContext:
    """Descriptor values of one file, each computed at most once."""

    def __init__(self, headers):
        self.headers = headers
        self.cache = {}

    def value(self, name):
        if name not in self.cache:
            try:
                value = descriptor_value(self.headers, name)
            except (ValueError, TypeError) as exc:   # a malformed keyword value
                raise FileProblem(self.headers.path, f"cannot compute {name}: {exc}") from None
            self.cache[name] = _comparable(value)
        return self.cache[name]


def _comparable(value):
    """The value an expression compares: per-extension lists give their first item."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, Section):
        return value.to_string()
    return value


class Expression:
    """A parsed selection expression; call it on a HeaderSet or Frame.

    Build it with :func:`expr_parser`.

    Attributes
    ----------
    text : str
        The expression as written.
    descriptors : frozenset of str
        The descriptor names the expression uses.
    """

    def __init__(self, text: str, tree: _Node, descriptors):
        self.text = text
        self._tree = tree
        self.descriptors = frozenset(descriptors)

    def __call__(self, headers) -> bool:
        """Evaluate on one file's headers.

        Raises
        ------
        FileProblem
            If a descriptor the expression needs cannot be computed.
        ExpressionError
            If values of incompatible types are order-compared.
        """
        return bool(self._tree.evaluate(_FileContext(headers)))

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __str__(self) -> str:
        return self.text


def expr_parser(text) -> Expression:
    """Parse a ``dataselect`` expression such as ``'filter_name=="i"'``.

    Parameters
    ----------
    text : str or Expression
        The expression (an :class:`Expression` is returned unchanged).

    Returns
    -------
    Expression
        Callable on a HeaderSet or Frame, returning a bool.

    Raises
    ------
    ExpressionError
        On anything outside the language (calls, attributes, subscripts,
        arithmetic ...), an unknown descriptor, a bad date, or an expression
        longer than :data:`MAX_EXPRESSION_LENGTH` or nested deeper than
        :data:`MAX_NESTING`.
    """
    if isinstance(text, Expression):
        return text
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression too long ({len(text)} characters; the limit is "
                              f"{MAX_EXPRESSION_LENGTH})")
    if not text.strip():
        raise ExpressionError("empty expression; use 'True' to select everything")
    parser = _Parser(text)
    tree = parser.parse()
    return Expression(text, tree, parser.names)


def _tag_set(tags, what):
    if isinstance(tags, str):
        tags = [tags]
    out = set()
    for tag in tags or ():
        if not isinstance(tag, str):
            raise ExpressionError(f"{what} must be strings, got {tag!r}")
        out.update(part.strip().upper() for part in tag.split(",") if part.strip())
    return out


def selection_tags(headers) -> frozenset:
    """The tags of a file that is being selected by tags (``--tags`` / ``--xtags``).

    Raises
    ------
    FileProblem
        If the file lacks ``OBSTYPE``, without which its kind (bias, flat,
        science) cannot be told: it is reported rather than silently left out.
    """
    try:
        descriptor_value(headers, "observation_type")
    except FileProblem as problem:
        raise FileProblem(problem.path, f"{problem.problem} (it decides whether the file is a "
                                        "bias, a flat or a science frame)") from None
    return tags_of(headers)


def select_data(inputs, tags=(), xtags=(), expression="True", problems=None) -> list:
    """Return the input files that have all ``tags``, none of ``xtags`` and match ``expression``.

    Only headers are read (no pixels).  Mirrors DRAGONS'
    ``dataselect.select_data(inputs, tags=[], xtags=[], expression='True')``.

    Parameters
    ----------
    inputs : iterable of str or path-like
        The files to consider (a single name is accepted too).
    tags : iterable of str, optional
        Tags that must all be present (e.g. ``['FLAT']``).
    xtags : iterable of str, optional
        Tags that exclude a file if any is present (e.g. ``['CAL']``).
    expression : str or Expression, optional
        A selection expression (see the module documentation); ``'True'``
        selects everything.
    problems : list, optional
        If given, a :class:`~gmoswidgets.errors.FileProblem` is appended for
        every file skipped because it cannot be read or lacks a keyword;
        otherwise each is logged as a warning.

    Returns
    -------
    list
        The selected inputs, exactly as given and in the same order.

    Raises
    ------
    ExpressionError
        If the expression is invalid (raised before any file is read).
    """
    expr = expr_parser(expression)
    required, excluded = _tag_set(tags, "tags"), _tag_set(xtags, "xtags")
    if isinstance(inputs, (str, os.PathLike)):    # one file, not a list of characters
        inputs = [inputs]
    selected = []
    for item in inputs:
        try:
            headers = header_values(item)
            file_tags = selection_tags(headers) if required or excluded else tags_of(headers)
            if required <= file_tags and not excluded & file_tags and expr(headers):
                selected.append(item)
        except FileProblem as problem:
            if problems is None:
                log.warning("skipping %s", problem)
            else:
                problems.append(problem)
    return selected
