"""One router per provider, plus health, readiness and metrics."""
