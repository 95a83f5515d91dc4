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


def test_an_allow_list_of_countries_refuses_the_rest():
    assert normalize_phone("+14155550101", ("US",)) == "+14155550101"
    with pytest.raises(InvalidInput, match="country"):
        normalize_phone("+33612345678", ("US", "GB"))
