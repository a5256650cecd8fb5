# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the module_utils unit tests.

Everything here is real: real keys, real certificates, real SQLite files in ``tmp_path``. The only stand-in is the
clock, which tests move forward to reach renewal windows, key retention ends, CRL next updates and CA expiry.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))
COLLECTIONS_ROOT = os.path.join(_REPO, '.build', 'collections')

try:
    import ansible_collections.certfleet.pki.plugins.module_utils  # noqa: F401  pylint: disable=unused-import
except ImportError:
    _link = os.path.join(COLLECTIONS_ROOT, 'ansible_collections', 'certfleet', 'pki')
    if not os.path.exists(_link):
        os.makedirs(os.path.dirname(_link), exist_ok=True)
        os.symlink(_REPO, _link)
    sys.path.insert(0, COLLECTIONS_ROOT)
    for _name in [n for n in sys.modules if n == 'ansible_collections' or n.startswith('ansible_collections.')]:
        del sys.modules[_name]  # a namespace package without certfleet may have been cached

sys.path.insert(0, os.path.join(os.path.dirname(_HERE), 'support'))  # helpers shared with the integration tests

from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA  # noqa: E402
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca  # noqa: E402
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import utcnow  # noqa: E402

PASSPHRASE = 'correct horse battery staple'
CA_SUBJECT = {'CN': 'Certfleet Test Client CA', 'O': 'Example Org', 'C': 'DE'}


class FakeClock:
    """A clock that stands still until a test moves it. Starts at the real time so OpenSSL agrees with it."""

    def __init__(self, start: datetime.datetime | None = None):
        self.now = start or utcnow()

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta) -> datetime.datetime:
        self.now = self.now + datetime.timedelta(**delta)
        return self.now


def dump_state(state_path: str) -> dict:
    """Every row of every table of a state database, plus its schema version: a logical snapshot."""
    conn = sqlite3.connect(state_path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        snapshot = {table: conn.execute('SELECT * FROM "%s" ORDER BY 1' % table).fetchall() for table in tables}
        snapshot['user_version'] = conn.execute('PRAGMA user_version').fetchone()[0]
    finally:
        conn.close()
    return snapshot


class CAHarness:
    """A created CA directory plus short-hands for the operations the modules call."""

    def __init__(self, path: str | None, passphrase, clock: FakeClock, created: dict, store_url: str | None = None):
        self.path = path
        self.passphrase = passphrase
        self.clock = clock
        self.created = created
        self.store_url = store_url  # a CA kept whole in a shared store has no path

    @property
    def state_path(self) -> str:
        return os.path.join(self.path, 'state.db')

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def open(self, **kwargs) -> ManagedCA:
        kwargs.setdefault('clock', self.clock)
        return ManagedCA(self.path, kwargs.pop('passphrase', self.passphrase), store_url=self.store_url, **kwargs)

    def ensure(self, identity: str, check_mode: bool = False, **params) -> dict:
        params.setdefault('subject', {'CN': identity})
        if 'csr' not in params:
            params.setdefault('key_type', 'ec-p256')
        with self.open() as ca:
            wanted = ca.build_wanted(identity=identity, **params)
            return ca.ensure_certificate(wanted, check_mode=check_mode)

    def revoke(self, **params) -> dict:
        with self.open() as ca:
            return ca.revoke(**params)

    def export(self, **params) -> dict:
        with self.open() as ca:
            return ca.export(**params)

    def publish_crl(self, **params) -> dict:
        with self.open() as ca:
            return ca.publish_crl(**params)

    def query(self, **params) -> dict:
        with self.open() as ca:
            return ca.query(**params)

    def record(self, serial: str):
        with self.open() as ca, ca.store.read():
            return ca.store.get(serial)

    def records(self, identity: str | None = None) -> list:
        with self.open() as ca, ca.store.read():
            return ca.store.find(identity=identity)

    def audit(self) -> list:
        with self.open() as ca, ca.store.read():
            return ca.store.audit_entries()

    def snapshot(self) -> dict:
        """The logical content of state.db and the names of the files in the CA directory."""
        state = dump_state(self.state_path)
        state['files'] = sorted(n for n in os.listdir(self.path) if not n.startswith('state.db-'))
        return state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_ca(tmp_path, clock):
    """Factory: a created CA (EC P-256 unless asked otherwise) under tmp_path, sharing the test's clock."""
    counter = {'n': 0}

    def factory(name: str | None = None, passphrase=PASSPHRASE, **params) -> CAHarness:
        counter['n'] += 1
        path = str(tmp_path / (name or 'ca%d' % counter['n']))
        params.setdefault('subject', dict(CA_SUBJECT))
        params.setdefault('key_type', 'ec-p256')
        params.setdefault('valid_days', 3650)
        if passphrase is None:
            params.setdefault('allow_unencrypted_key', True)
        created = ensure_ca(ca_path=path, ca_passphrase=passphrase, clock=params.pop('clock', clock), **params)
        return CAHarness(path, passphrase, clock, created)

    return factory


@pytest.fixture
def ca(make_ca) -> CAHarness:
    """A fresh CA with an encrypted key, no policy and no CRL URL."""
    return make_ca('ca')


# -- a real PostgreSQL server -------------------------------------------------------------------------------------

@pytest.fixture(scope='session')
def postgresql_server():
    """A throw-away cluster for the session (skipped, with the reason, where none can run)."""
    from postgresql_server import PostgreSQLServer, why_unavailable  # pylint: disable=import-error
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
