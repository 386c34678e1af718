"""The HTTP ingress: verify on raw bytes, publish an Avro envelope, 2xx only after the broker acked."""

from ingress.app import create_app

__all__ = ["create_app"]
