"""Shared pytest configuration for the orchestr8 test suite."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci")
