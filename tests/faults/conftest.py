"""Fixtures of the fault suite: each database as a URL for a daemon process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def daemon_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database kind, URL) for a daemon run: a SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path}/watcher.db"
    else:
        yield "postgresql", request.getfixturevalue("pg_url")
