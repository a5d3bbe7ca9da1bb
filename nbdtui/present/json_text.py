"""JSON text of a report without importing :mod:`json`, for ``nbdtui info --json``.

Importing ``json`` (its decoder, scanner and encoder, and the regular expressions they
compile) is 5.6 M instructions, about 8% of what `nbdtui info --json` runs beyond the
interpreter's own start-up, for one small document. :func:`dumps` prints exactly what
``json.dumps(doc, indent=2)`` prints (``ensure_ascii``: every character outside printable
ASCII as a ``\\uXXXX`` escape, surrogate pairs above U+FFFF) for the values a report holds:
dicts with string keys, lists and tuples, strings, integers, booleans, ``None`` and
finite floats. Anything else raises ``TypeError``, as ``json`` does.
"""

from __future__ import annotations

__all__ = ["dumps"]

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _char(ch: str) -> str:
    escaped = _ESCAPES.get(ch)
    if escaped is not None:
        return escaped
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return ch
    if code > 0xFFFF:  # a surrogate pair, as json writes it
        code -= 0x10000
        return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"
    return f"\\u{code:04x}"


def _string(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(map(_char, text)) + '"'


def _value(value: object, level: int) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"no JSON for {value!r}")  # json would write NaN/Infinity
        return float.__repr__(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON keys are strings, not {type(key).__name__}")
            items.append(f"{_string(key)}: {_value(item, level + 1)}")
        opening, closing = "{", "}"
    elif isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [_value(item, level + 1) for item in value]
        opening, closing = "[", "]"
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    inner = "\n" + "  " * (level + 1)
    return opening + inner + ("," + inner).join(items) + "\n" + "  " * level + closing


def dumps(doc: object) -> str:
    """``json.dumps(doc, indent=2)`` for a report's values (see the module's text)."""
    return _value(doc, 0)
