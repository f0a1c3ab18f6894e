"""Shared fixtures live in tests/fixtures/ as plugins, one peer per module."""

pytest_plugins = [
    "tests.fixtures.feed_server",
    "tests.fixtures.smtp_sink",
    "tests.fixtures.db",
    "tests.fixtures.golden",
]
