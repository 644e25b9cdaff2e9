import re

import pytest

from functions.guardrails.recognizers import (
    CARD_CANDIDATE,
    NANP,
    card_number,
    context_hits,
    cued_names,
    luhn,
    plausible_name,
)


@pytest.mark.parametrize("card", [
    "4111 1111 1111 1111",     # Visa
    "4222222222222",           # Visa, 13 digits
    "4000 0000 0000 0000 006",  # Visa, 19 digits
    "2223000048400011",        # Mastercard 2-series
    "5555-5555-5555-4444",     # Mastercard
    "378282246310005",         # Amex
    "6011111111111117",        # Discover
    "3530111333300000",        # JCB
    "36227206271667",          # Diners, 14 digits
    "6759649826438453",        # Maestro
    "501800000009",            # Maestro, 12 digits
])
def test_current_card_ranges(card: str) -> None:
    assert re.fullmatch(CARD_CANDIDATE, card) and card_number(card)


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1112",     # checksum fails
    "1234567812345670",        # no issuer starts with 1
    "9999999999999995",        # nor 9
    "4111-1111 1111-1111",     # mixed separators: two numbers, not one card
    "37828224631000",          # Amex is 15 digits
])
def test_not_cards(text: str) -> None:
    assert not card_number(text)


def test_luhn() -> None:
    assert luhn("79927398713") and not luhn("79927398710")


@pytest.mark.parametrize("phone", [
    "425-555-0100", "(425)555-0100", "(425) 555-0100", "425.555.0100", "+1-425-555-0100",
    "001-425-555-0100", "1-425-555-0100", "425-555-0100x123", "425.555.0100 ext. 42",
    "+1-632-761-9512x950",  # an area code not assigned today is still a phone number's shape
])
def test_north_american_shapes(phone: str) -> None:
    m = re.search(NANP, f"call {phone} now")
    assert m and m.group(0) == phone


@pytest.mark.parametrize("text", ["2024-05-01", "version 1.555.0100", "125-555-0100",
                                  "425-155-0100", "ID 425-555-01001"])
def test_not_phones(text: str) -> None:
    assert not re.search(NANP, text)


def test_context_words_are_whole_words_on_either_side() -> None:
    text = "For the tax form use 123456789 as the social security number."
    start = text.index("1")
    assert not context_hits(text, start, start + 9, ["us"])  # "use" is not "us"
    assert context_hits(text, start, start + 9, ["social"])  # after the value
    assert context_hits("Two cards: 4111", 11, 15, ["card"])  # plural


@pytest.mark.parametrize(("text", "names"), [
    ("Dear Maureen Walker, thank you.", ["Maureen Walker"]),
    ("I spoke with Juul Benthe Wolters about the refund.", ["Juul Benthe Wolters"]),
    ("Can you ask Sig.ra Veronica Corbo to review it?", ["Veronica Corbo"]),
    ("Send the keys to Ana de Souza at the desk.", ["Ana de Souza"]),
    ("Lorraine Mistry said the shipment is late.", ["Lorraine Mistry"]),
    ("Thanks again, Ágatha Moreira.", ["Ágatha Moreira"]),
    ("Hi Team, the build is green.", []),
    ("I met the Platform team on Monday.", []),
    ("Dear Customer Support, my order is late.", []),
])
def test_cued_names(text: str, names: list[str]) -> None:
    assert [text[a:b] for a, b in cued_names(text, {"the", "we", "on"})] == names


def test_names_have_no_digits() -> None:
    assert plausible_name("Olivia Brown") and plausible_name("O'Neil-Smith")
    assert not plausible_name("Batch 7099") and not plausible_name("c38d:82b8") and not plausible_name("A9630")
