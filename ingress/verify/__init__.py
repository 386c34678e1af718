"""Signature verification on raw request bytes, one module per scheme."""

from ingress.verify.base import VerificationError, Verified
from ingress.verify.certs import PayPalCertStore
from ingress.verify.paypal import PayPalVerifier
from ingress.verify.standard import StandardVerifier
from ingress.verify.stripe import StripeVerifier

__all__ = ["PayPalCertStore", "PayPalVerifier", "StandardVerifier", "StripeVerifier", "VerificationError", "Verified"]
