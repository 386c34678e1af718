"""Money: integer minor units plus upper-case ISO 4217 currency, never through float.

Exponents are ISO 4217's (active codes, plus HRK and CUC, which old events still carry),
with one deliberate deviation, MGA = 0, because Stripe (the only provider here that supports
it) counts MGA amounts in whole ariary.

HUF and TWD: PayPal's currency list says both "do not support decimals" and PayPal sends
whole numbers ("1000"), while ISO 4217 and Stripe's integer amounts use two decimals.
We convert PayPal strings with the ISO exponent (2), so PayPal "1000" HUF becomes
100000 minor units, the same number Stripe sends for 1000 Ft. Keeping one exponent per
currency keeps `amount_minor` comparable across providers and with the merchant's ledger;
the cost is that a decimal HUF string ("10.50"), which PayPal would refuse, is accepted here.

Known provider quirk not corrected: Stripe counts ISK amounts in hundredths for backwards
compatibility although ISO (and this table) says 0; Stripe integers are taken as sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from streams.normalize.base import NormalizeError

__all__ = [
    "CURRENCY_EXPONENTS",
    "INT64_MAX",
    "check_minor",
    "currency_code",
    "decimal_to_minor",
    "exponent",
    "minor_to_decimal",
]

INT64_MAX = 2**63 - 1
"""Avro `long`: the largest amount a `PaymentEvent` can carry."""

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW MGA PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR "
    "FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR JMD KES KGS KHR "
    "KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN "
    "NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD "
    "SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU "
    "UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)

CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {code: exp for codes, exp in ((_ZERO, 0), (_TWO, 2), (_THREE, 3), (_FOUR, 4)) for code in codes.split()}
)

_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)
_MAX_DECIMAL_CHARS = 40


def currency_code(value: object) -> str:
    """Upper-cased, known ISO 4217 code (Stripe sends "usd", PayPal "USD")."""
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise NormalizeError("invalid_currency", f"not a currency code: {value!r:.40}")
    code = value.upper()
    if code not in CURRENCY_EXPONENTS:
        raise NormalizeError("unknown_currency", code)
    return code


def exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit."""
    return CURRENCY_EXPONENTS[currency_code(currency)]


def check_minor(value: object) -> int:
    """An amount that is already in minor units (Stripe): a non-negative integer that fits a long."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise NormalizeError("invalid_amount", f"not an integer amount: {value!r:.40}")
    if value < 0:
        raise NormalizeError("negative_amount", str(value))
    if value > INT64_MAX:
        raise NormalizeError("amount_out_of_range", str(value))
    return value


def decimal_to_minor(value: object, currency: str) -> int:
    """A PayPal decimal string ("30.00", "0.99", JPY "1000") in minor units.

    Exact string arithmetic: digits are joined and padded, never parsed as a float. More
    fraction digits than the exponent allows (even zeros, "1.000" USD) is an error, as are
    signs, exponents, spaces, underscores and non-ASCII digits.
    """
    exp = exponent(currency)
    if not isinstance(value, str):
        raise NormalizeError("invalid_amount", f"amount is not a decimal string: {value!r:.40}")
    if value.startswith("-"):
        raise NormalizeError("negative_amount", value[:_MAX_DECIMAL_CHARS])
    match = _DECIMAL.fullmatch(value) if len(value) <= _MAX_DECIMAL_CHARS else None
    if match is None:
        raise NormalizeError("invalid_amount", f"not a decimal amount: {value[:_MAX_DECIMAL_CHARS]!r}")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exp:
        raise NormalizeError("too_many_decimals", f"{value} has more than {exp} decimals for {currency}")
    return check_minor(int(whole + fraction.ljust(exp, "0")))


def minor_to_decimal(minor: int, currency: str) -> str:
    """The inverse of `decimal_to_minor`, with exactly the currency's number of decimals."""
    exp = exponent(currency)
    digits = str(check_minor(minor))
    if exp == 0:
        return digits
    digits = digits.rjust(exp + 1, "0")
    return f"{digits[:-exp]}.{digits[-exp:]}"
