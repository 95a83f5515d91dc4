"""Phone numbers in any common format, normalised to E.164 with libphonenumber."""

from __future__ import annotations

from chalicelib.errors import InvalidInput

MAX_INPUT_LENGTH = 32

# Why a number was refused, the error's `reason`: clients word it; the message is for developers.
NOT_A_NUMBER = "not_a_number"
NOT_MOBILE = "not_mobile"
COUNTRY_NOT_ALLOWED = "country_not_allowed"


def normalize_phone(raw: object, allowed_countries: tuple[str, ...] = ()) -> str:
    """The E.164 form of `raw` ("+14155550101"), or `InvalidInput` if it is not a valid
    mobile number in international form (or is outside `allowed_countries`, when given)."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_INPUT_LENGTH:
        raise InvalidInput("phone must be a phone number in international form, e.g. +14155550101",
                           reason=NOT_A_NUMBER)
    # Imported on first use: most functions never parse a phone number (cold starts).
    import phonenumbers

    # Numbers that can receive an SMS. (libphonenumber cannot tell US and Canadian mobiles
    # from landlines, hence FIXED_LINE_OR_MOBILE.)
    sms_capable = (phonenumbers.PhoneNumberType.MOBILE,
                   phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    text = raw.strip()
    if text.startswith("00"):  # the international call prefix most of the world dials
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput("phone is not a number in international form (+country code)",
                           reason=NOT_A_NUMBER) from exc
    is_mobile = phonenumbers.number_type(number) in sms_capable
    if not phonenumbers.is_valid_number(number) or not is_mobile:
        raise InvalidInput("phone is not a valid mobile number", reason=NOT_MOBILE)
    if allowed_countries and phonenumbers.region_code_for_number(number) not in allowed_countries:
        raise InvalidInput("we cannot send codes to numbers in that country",
                           reason=COUNTRY_NOT_ALLOWED)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
