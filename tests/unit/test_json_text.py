"""present/json_text.py prints what ``json.dumps(doc, indent=2)`` prints (the oracle)
for every kind of value a report holds, and refuses what it cannot print."""

from __future__ import annotations

import json

import pytest

from nbdtui.present.json_text import dumps

EVERY_ASCII = "".join(map(chr, range(128)))

DOCS = [
    {},
    [],
    "",
    0,
    -17,
    2**70,
    True,
    None,
    0.1,
    -0.0,
    1e100,
    {
        "protocol": "newstyle-fixed",
        "TLS": False,
        "structured": True,
        "exports": [
            {
                "export-name": "",
                "uri": "nbd+unix:///?socket=/tmp/s",
                "contexts": ["base:allocation", "qemu:dirty-bitmap:b"],
                "is_read_only": True,
                "export-size": 1 << 40,
                "block_size_minimum": 1,
                "description": None,
            }
        ],
    },
    {"a": {}, "b": [], "c": [[], {}, [1, [2, {"d": ()}]]], "e": (1, "two")},
    EVERY_ASCII,
    {EVERY_ASCII: EVERY_ASCII},
    "é€ \u2028 \x7f \x80 \ufeff",
    "astral 😀 \U0010ffff",
    "a socket path's byte that is not UTF-8: \udcff, and a high one \ud800",
]


@pytest.mark.parametrize("doc", DOCS, ids=range(len(DOCS)))
def test_same_text_as_json_dumps_indent_2(doc: object) -> None:
    assert dumps(doc) == json.dumps(doc, indent=2)


def test_the_text_reads_back_as_the_document() -> None:
    doc = DOCS[11]
    assert json.loads(dumps(doc)) == doc


@pytest.mark.parametrize("bad", [{1: "x"}, {"s": {1, 2}}, b"bytes", float("nan"), [float("inf")]])
def test_what_is_not_json_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        dumps(bad)
