"""JSON documents as text for the guardrails: leaves out, masked leaves back in, still JSON."""

import json
from typing import Any

from functions.guardrails import jsontext
from functions.guardrails.findings import Span


def test_leaves_are_keys_strings_and_integers_in_order() -> None:
    doc = jsontext.Document('{"to": ["a@b.co", 4111111111111111], "ok": true, "x": 1.5, '
                            '"n": {"k": "line\\nnext \\"q\\""}}')
    assert [(leaf.path, leaf.key, leaf.text) for leaf in doc.leaves] == [
        (("to",), True, "to"), (("to", 0), False, "a@b.co"),
        (("to", 1), False, "4111111111111111"), (("ok",), True, "ok"), (("x",), True, "x"),
        (("n",), True, "n"), (("n", "k"), True, "k"), (("n", "k"), False, 'line\nnext "q"')]


def test_replaced_stays_valid_json_and_unchanged_is_byte_for_byte() -> None:
    raw = '{"to":  "a@b.co", "id": 4111111111111111, "note": "say \\"hi\\"\\n"}'
    doc = jsontext.Document(raw)
    texts = [leaf.text for leaf in doc.leaves]
    assert doc.replaced(texts) is raw
    texts[1], texts[3] = '<EMAIL "1">', "<CREDIT_CARD_1>"
    out = json.loads(doc.replaced(texts))
    assert out == {"to": '<EMAIL "1">', "id": "<CREDIT_CARD_1>", "note": 'say "hi"\n'}


def test_keys_can_be_replaced() -> None:
    doc = jsontext.Document('{"a@b.co": {"a@b.co": 1}}')
    assert json.loads(doc.replaced(["K", "K2", "1"])) == {"K": {"K2": 1}}


def test_not_json_is_one_leaf() -> None:
    for raw in ("not json", '"a string"', "42", '{"broken": '):
        doc = jsontext.Document(raw)
        assert doc.value is None and [leaf.text for leaf in doc.leaves] == [raw]
        assert doc.replaced(["new"]) == "new"


def test_join_and_split_map_findings_back() -> None:
    texts = ["email", "a@b.co", "name", "Ada Lovelace"]
    joined, starts = jsontext.join(texts)
    assert joined == "email\na@b.co\nname\nAda Lovelace"
    at = joined.index("a@b.co")
    spans = [Span("EMAIL_ADDRESS", at, at + 6, 1.0), Span("PERSON", at + 3, joined.index("Ada") + 3,
                                                          0.8)]
    got = jsontext.split(spans, starts, texts)
    assert got[1] == [Span("EMAIL_ADDRESS", 0, 6, 1.0), Span("PERSON", 3, 6, 0.8)]
    assert got[2] == [Span("PERSON", 0, 4, 0.8)] and got[3] == [Span("PERSON", 0, 3, 0.8)]
    assert got[0] == []


def test_deep_documents_do_not_exhaust_the_stack() -> None:
    value: Any = "a@b.co"
    for i in range(5000):
        value = {"k": value} if i % 2 else [value]
    found = jsontext.leaves(value)
    assert found[-1].text == "a@b.co" and len(found) == 2501
    changes = {(found[-1].path, False): "<E>", (found[0].path, True): "K"}
    out = jsontext.rebuild(value, changes)
    assert jsontext.leaves(out)[-1].text == "<E>" and list(out) == ["K"]
    assert jsontext.leaves(value)[-1].text == "a@b.co"  # the original is not changed
    assert jsontext.Document("[" * 100_000 + "]" * 100_000).value is None  # too deep to parse


def test_rebuild_copies_only_what_changes() -> None:
    value = {"a": {"x": "1"}, "b": {"y": "2"}, "c": [1, "z"]}
    out = jsontext.rebuild(value, {(("a", "x"), False): "one", (("c", 1), False): "Z",
                                   (("b",), True): "B"})
    assert out == {"a": {"x": "one"}, "B": {"y": "2"}, "c": [1, "Z"]}
    assert list(out) == ["a", "B", "c"] and out["B"] is value["b"]
    assert value == {"a": {"x": "1"}, "b": {"y": "2"}, "c": [1, "z"]}
