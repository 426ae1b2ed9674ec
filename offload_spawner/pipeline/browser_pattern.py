"""An admin's ``validation_regex`` (Python ``re``) as an HTML ``pattern`` attribute.

Why: browsers compile ``pattern`` as ``new RegExp("^(?:" + pattern + ")$", "v")``
(HTML's "compiling a pattern attribute" uses the ``v`` flag, as Chromium does
since version 112). ``v`` mode is stricter than Python: inside a character
class ``( ) [ ] { } / - |`` and the doubled punctuators (``&&``, ``..`` ...)
must be escaped, so the usual ``[a-z0-9._/-]`` is a syntax error there, the
browser logs it and ignores the attribute. This module rewrites the syntax
both languages share into ``v``-mode spelling, and gives up (``None``: no
``pattern`` at all, the hub still checks on submit) on anything Python-only
(inline flags, ``(?P<...>)``, ``\\A``/``\\Z``, back references, ``{,n}`` ...).

Pure: a string in, a string (or None) out.
"""

from __future__ import annotations

import re
import warnings

#: Every ASCII punctuation character that may be written escaped inside a
#: ``v``-mode class: SyntaxCharacter, "/" and ClassSetReservedPunctuator
#: (ECMA-262, "Patterns"). Escaping all of them literally is always valid and
#: removes every reserved character and doubled punctuator.
_CLASS_ESCAPABLE = frozenset("^$\\.*+?()[]{}|/&-!#%,:;<=>@`~")
#: Outside a class, ``u``/``v`` mode accepts these escaped (IdentityEscape).
_SYNTAX = frozenset("^$\\.*+?()[]{}|/")
#: Escapes with the same meaning in Python and JavaScript.
_SHARED_CLASS_ESCAPES = frozenset("dDwWsSntrfv")
_SHARED_ESCAPES = _SHARED_CLASS_ESCAPES | frozenset("bB")
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
_HEX = re.compile(r"x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}")


class _Unsupported(Exception):
    pass


def _escape(text: str, i: int, in_class: bool) -> tuple[str, int]:
    """The escape sequence at ``text[i] == "\\"`` -> (v-mode spelling, next index)."""
    if i + 1 >= len(text):
        raise _Unsupported
    c = text[i + 1]
    if c in (_SHARED_CLASS_ESCAPES if in_class else _SHARED_ESCAPES):
        return "\\" + c, i + 2
    hexa = _HEX.match(text, i + 1)
    if hexa:
        return "\\" + hexa.group(0), hexa.end()
    if c.isalnum():
        # \A \Z \1 \N{...} \U... and Python's class \b (backspace): no shared meaning.
        raise _Unsupported
    return _literal(c, in_class), i + 2


def _literal(c: str, in_class: bool) -> str:
    if in_class:
        return "\\" + c if c in _CLASS_ESCAPABLE else c
    return "\\" + c if c in _SYNTAX else c


def _class(text: str, i: int) -> tuple[str, int]:
    """The character class starting at ``text[i] == "["`` -> (v-mode spelling, next index)."""
    out = ["["]
    i += 1
    if i < len(text) and text[i] == "^":
        out.append("^")
        i += 1
    first = True
    previous_atom = False  # a single character that may start a range
    while i < len(text):
        c = text[i]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        if c == "[" and text.startswith(("[:", "[=", "[."), i):
            raise _Unsupported  # Python warns about these (future set syntax)
        if c == "-" and previous_atom and i + 1 < len(text) and text[i + 1] != "]":
            # A range: the next item must be a single character too.
            out.append("-")
            i += 1
            if text[i] == "\\":
                piece, i = _escape(text, i, in_class=True)
                if piece[1:2] in _SHARED_CLASS_ESCAPES and len(piece) == 2:
                    raise _Unsupported  # [a-\d]
            else:
                piece, i = _literal(text[i], True), i + 1
            out.append(piece)
            previous_atom = False
            first = False
            continue
        if c == "\\":
            piece, i = _escape(text, i, in_class=True)
            previous_atom = not (len(piece) == 2 and piece[1] in _SHARED_CLASS_ESCAPES - set("ntrfv"))
        else:
            piece, i = _literal(c, True), i + 1
            previous_atom = True
        out.append(piece)
        first = False
    raise _Unsupported  # unterminated (re.compile would have refused it)


def html_pattern(regex: str | None) -> str | None:
    """``regex`` in the spelling a browser's ``pattern`` attribute accepts with
    the same meaning, or None when there is no such spelling here."""
    if not regex:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible set intersection": the catalog warned
            re.compile(regex)
    except re.error:
        return None
    out: list[str] = []
    i = 0
    try:
        while i < len(regex):
            c = regex[i]
            if c == "\\":
                piece, i = _escape(regex, i, in_class=False)
            elif c == "[":
                piece, i = _class(regex, i)
            elif c == "(" and regex.startswith("(?", i):
                if not regex.startswith(("(?:", "(?=", "(?!", "(?<=", "(?<!"), i):
                    raise _Unsupported  # inline flags, named groups, comments, conditionals
                piece, i = "(", i + 1
            elif c == "{":
                quantifier = _QUANTIFIER.match(regex, i)
                if quantifier:
                    piece, i = quantifier.group(0), quantifier.end()
                elif out and regex.startswith("{,", i):
                    raise _Unsupported  # Python's {,n}
                else:
                    piece, i = "\\{", i + 1
            elif c in "]}":
                piece, i = "\\" + c, i + 1  # literal in Python, a syntax error in v mode
            else:
                piece, i = c, i + 1
            out.append(piece)
    except _Unsupported:
        return None
    return "".join(out)


def literal_prefix(regex: str | None) -> str:
    """The fixed text every match starts with (``^quay\\.io/jupyter/...`` ->
    ``quay.io/jupyter/``), to tell a user what the field accepts."""
    if not regex:
        return ""
    out = []
    i = 1 if regex.startswith("^") else 0
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex) and not regex[i + 1].isalnum():
            nxt = regex[i + 2 : i + 3]
            if nxt and nxt in "*?{":
                break
            out.append(regex[i + 1])
            i += 2
        elif c.isalnum() or c in "/:-_@":
            nxt = regex[i + 1 : i + 2]
            if nxt and nxt in "*?{":
                break
            if nxt == "+":
                out.append(c)
                break
            out.append(c)
            i += 1
        else:
            break
    return "".join(out)


__all__ = ["html_pattern", "literal_prefix"]
