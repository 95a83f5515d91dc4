"""Phone numbers in any common international format normalise to one E.164 string."""

from __future__ import annotations

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.phones import normalize_phone


@pytest.mark.parametrize(
    "raw", ["+14155550101", "+1 415-555-0101", "(+1) 415 555 0101", "0014155550101",
            " +1.415.555.0101 ", "+1 (415) 555-0101"],
)
def test_common_formats_normalise_to_e164(raw):
    assert normalize_phone(raw) == "+14155550101"


@pytest.mark.parametrize(
    "raw", ["hello", "123", "4155550101", "+999 123 456", "+44 20 7946 0958", "", "   ",
            None, 14155550101, "+1" + "5" * 40],
)
def test_junk_and_landlines_are_refused(raw):
    with pytest.raises(InvalidInput):
        normalize_phone(raw)


@pytest.mark.parametrize(("raw", "reason"), [
    ("hello", "not_a_number"), (None, "not_a_number"), ("4155550101", "not_a_number"),
    ("+44 20 7946 0958", "not_mobile"), ("+999 123 456", "not_a_number"),
])
def test_a_refusal_says_why_in_its_reason(raw, reason):
    with pytest.raises(InvalidInput) as refused:
        normalize_phone(raw)
    assert refused.value.to_error()["reason"] == reason


def test_an_allow_list_of_countries_refuses_the_rest():
    assert normalize_phone("+14155550101", ("US",)) == "+14155550101"
    with pytest.raises(InvalidInput, match="country") as refused:
        normalize_phone("+33612345678", ("US", "GB"))
    assert refused.value.to_error()["reason"] == "country_not_allowed"
