# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Store test fixtures: a real PostgreSQL server for the session (skipped, with the reason, where none can run)
and a fresh database per test."""

from __future__ import annotations

import pytest

from postgresql_server import PostgreSQLServer, why_unavailable  # pylint: disable=import-error


@pytest.fixture(scope='session')
def postgresql_server():
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    server = PostgreSQLServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgresql_database(postgresql_server):
    """The name of a new, empty database, dropped after the test."""
    name = postgresql_server.create_database()
    try:
        yield name
    finally:
        postgresql_server.drop_database(name)
