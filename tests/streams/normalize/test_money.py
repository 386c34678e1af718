"""Money conversion: exponent table, exact decimal strings, and the properties that must always hold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.normalize import NormalizeError
from streams.normalize.money import (
    CURRENCY_EXPONENTS,
    INT64_MAX,
    check_minor,
    currency_code,
    decimal_to_minor,
    exponent,
    minor_to_decimal,
)


def codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


PAYPAL = codes("AUD BRL CAD CNY CZK DKK EUR HKD HUF ILS JPY MYR MXN TWD NZD NOK PHP PLN GBP SGD SEK CHF THB USD")
STRIPE_ZERO_DECIMAL = codes("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF")
THREE_DECIMAL = codes("BHD JOD KWD OMR TND")
CURRENCIES = sorted(CURRENCY_EXPONENTS)

quick = settings(max_examples=300, database=None, deadline=None)


def test_table_covers_paypal_and_stripe_special_currencies() -> None:
    assert CURRENCY_EXPONENTS.keys() >= PAYPAL
    assert {code: CURRENCY_EXPONENTS[code] for code in STRIPE_ZERO_DECIMAL} == dict.fromkeys(STRIPE_ZERO_DECIMAL, 0)
    assert {code: CURRENCY_EXPONENTS[code] for code in THREE_DECIMAL} == dict.fromkeys(THREE_DECIMAL, 3)
    # Documented choice: ISO exponent for the currencies PayPal sends without decimals.
    assert (CURRENCY_EXPONENTS["HUF"], CURRENCY_EXPONENTS["TWD"], CURRENCY_EXPONENTS["USD"]) == (2, 2, 2)
    assert all(len(code) == 3 and code.isupper() for code in CURRENCY_EXPONENTS)


@pytest.mark.parametrize(("value", "code"), [("usd", "USD"), ("Eur", "EUR"), ("JPY", "JPY")])
def test_currency_code_is_upper_cased(value: str, code: str) -> None:
    assert currency_code(value) == code


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "invalid_currency"), ("US", "invalid_currency"), ("USDT", "invalid_currency"), ("U5D", "invalid_currency"),
     ("ÜSD", "invalid_currency"), (None, "invalid_currency"), (840, "invalid_currency"), ("ABC", "unknown_currency"),
     ("XAU", "unknown_currency")],
)
def test_bad_currency(value: object, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        currency_code(value)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [("30.00", "USD", 3000), ("0.99", "USD", 99), ("30", "USD", 3000), ("30.5", "USD", 3050), ("0", "USD", 0),
     ("1000", "JPY", 1000), ("1000", "HUF", 100000), ("5.124", "KWD", 5124), ("5.12", "KWD", 5120),
     ("0.0001", "CLF", 1), ("007.10", "EUR", 710), ("92233720368547758.07", "USD", INT64_MAX)],
)
def test_decimal_to_minor(value: str, currency: str, minor: int) -> None:
    assert decimal_to_minor(value, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency", "reason"),
    [("1.000", "USD", "too_many_decimals"), ("1000.5", "JPY", "too_many_decimals"), ("1.0", "JPY", "too_many_decimals"),
     ("5.1234", "KWD", "too_many_decimals"), ("-1.00", "USD", "negative_amount"), ("-0", "USD", "negative_amount"),
     ("+1.00", "USD", "invalid_amount"), ("1e3", "USD", "invalid_amount"), (" 1.00", "USD", "invalid_amount"),
     ("1_000", "USD", "invalid_amount"), ("١٢", "USD", "invalid_amount"), (".5", "USD", "invalid_amount"),
     ("5.", "USD", "invalid_amount"), ("", "USD", "invalid_amount"), ("NaN", "USD", "invalid_amount"),
     ("1" * 41, "USD", "invalid_amount"), ("92233720368547758.08", "USD", "amount_out_of_range"),
     (1.5, "USD", "invalid_amount"), (100, "USD", "invalid_amount"), ("1.00", "XYZ", "unknown_currency")],
)
def test_decimal_to_minor_rejects(value: object, currency: str, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        decimal_to_minor(value, currency)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [(-1, "negative_amount"), (INT64_MAX + 1, "amount_out_of_range"), (1.0, "invalid_amount"), (True, "invalid_amount"),
     ("1", "invalid_amount"), (None, "invalid_amount")],
)
def test_check_minor_rejects(value: object, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        check_minor(value)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(3000, "USD", "30.00"), (5, "USD", "0.05"), (0, "USD", "0.00"), (1000, "JPY", "1000"), (1500, "KWD", "1.500")],
)
def test_minor_to_decimal(minor: int, currency: str, text: str) -> None:
    assert minor_to_decimal(minor, currency) == text


@quick
@given(minor=st.integers(min_value=0, max_value=INT64_MAX), currency=st.sampled_from(CURRENCIES))
def test_round_trip_minor_decimal_minor(minor: int, currency: str) -> None:
    text = minor_to_decimal(minor, currency)
    back = decimal_to_minor(text, currency)
    assert type(back) is int
    assert back == minor
    assert text.count(".") == (1 if exponent(currency) else 0)


@quick
@given(
    whole=st.text("0123456789", min_size=1, max_size=15),
    fraction=st.text("0123456789", max_size=4),
    currency=st.sampled_from(CURRENCIES),
)
def test_agrees_with_exact_decimal_arithmetic(whole: str, fraction: str, currency: str) -> None:
    """Oracle: `Decimal` scaled by 10**exponent, where the string has few enough decimals."""
    value = f"{whole}.{fraction}" if fraction else whole
    exp = exponent(currency)
    if len(fraction) > exp:
        with pytest.raises(NormalizeError) as caught:
            decimal_to_minor(value, currency)
        assert caught.value.reason == "too_many_decimals"
    else:
        expected = Decimal(value).scaleb(exp)
        assert expected == expected.to_integral_value()
        assert decimal_to_minor(value, currency) == int(expected)


@quick
@given(
    minor=st.integers(min_value=0, max_value=10**12),
    extra=st.text("0123456789", min_size=1, max_size=3),
    currency=st.sampled_from(CURRENCIES),
)
def test_rejects_too_many_decimals(minor: int, extra: str, currency: str) -> None:
    text = minor_to_decimal(minor, currency)
    longer = f"{text}{extra}" if "." in text else f"{text}.{extra}"
    with pytest.raises(NormalizeError) as caught:
        decimal_to_minor(longer, currency)
    assert caught.value.reason == "too_many_decimals"


@quick
@given(value=st.floats(allow_nan=True, allow_infinity=True), currency=st.sampled_from(CURRENCIES))
def test_floats_are_never_accepted(value: float, currency: str) -> None:
    with pytest.raises(NormalizeError):
        decimal_to_minor(value, currency)
    with pytest.raises(NormalizeError):
        check_minor(value)


@quick
@given(value=st.text(max_size=50), currency=st.sampled_from(CURRENCIES))
def test_arbitrary_text_is_an_int_or_a_normalize_error(value: str, currency: str) -> None:
    try:
        result = decimal_to_minor(value, currency)
    except NormalizeError:
        return
    assert type(result) is int
    assert 0 <= result <= INT64_MAX
