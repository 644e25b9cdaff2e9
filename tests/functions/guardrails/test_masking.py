from functions.guardrails.findings import Span
from functions.guardrails.masking import Masker, redact, safe_cut


def test_same_value_same_placeholder_and_restore() -> None:
    m = Masker()
    a = m.mask("mail ann@x.io or bob@y.io", [Span("EMAIL_ADDRESS", 5, 13, 1), Span("EMAIL_ADDRESS", 17, 25, 1)])
    b = m.mask("again ann@x.io", [Span("EMAIL_ADDRESS", 6, 14, 1)])
    assert a == "mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>"
    assert b == "again <EMAIL_ADDRESS_1>"
    assert m.restore("to <EMAIL_ADDRESS_2>, <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_9>") == \
        "to bob@y.io, ann@x.io, <EMAIL_ADDRESS_9>"
    assert "ann" not in repr(m)


def test_redact_is_irreversible() -> None:
    assert redact("card 4111", [Span("CREDIT_CARD", 5, 9, 1)]) == "card <CREDIT_CARD>"


def test_safe_cut_never_splits_a_placeholder() -> None:
    text = "hello <PERSON_1> and <EMAIL_ADD"
    assert safe_cut(text, len(text)) == text.index("<EMAIL")
    assert safe_cut(text, 10) == 6
    assert safe_cut(text, 16) == 16
