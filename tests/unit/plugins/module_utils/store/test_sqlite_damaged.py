# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A state.db with a page overwritten: every way in says which file is damaged and where recovery is documented.

The damage is real: a CA with certificates, a checkpointed state.db, and one page of the certificates table in the
middle of the file overwritten with random bytes, as a bad disk sector or a careless copy would leave it.
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import StoreDamagedError, StoreError
from ansible_collections.certfleet.pki.plugins.module_utils.store.sqlite import SQLiteStore

IDENTITIES = ['user%02d' % n for n in range(30)]


def damage_state_db(path: str) -> list:
    """Overwrite the certificates-table page nearest the middle of ``path``; return the identities it held."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        page_size = conn.execute('PRAGMA page_size').fetchone()[0]
        pages = [row[0] for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'certificates' AND pagetype = 'leaf' ORDER BY pageno")]
        identities = [row[0] for row in conn.execute('SELECT identity FROM certificates')]
    finally:
        conn.close()
    total = os.path.getsize(path) // page_size
    middle = min(pages, key=lambda page: abs(page - total // 2))
    with open(path, 'r+b') as handle:
        handle.seek((middle - 1) * page_size)
        handle.write(os.urandom(page_size))
    lost = []
    for identity in identities:  # which identities now sit on the damaged page, seen by plain sqlite3
        conn = sqlite3.connect(path)
        try:
            conn.execute('SELECT pem FROM certificates WHERE identity = ? AND is_current = 1', (identity,)).fetchall()
        except sqlite3.DatabaseError:
            lost.append(identity)
        finally:
            conn.close()
    assert lost, 'the damaged page held no certificate'
    return lost


def _files(folder: str) -> dict:
    return {name: open(os.path.join(folder, name), 'rb').read() for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))}


@pytest.fixture
def damaged(ca):
    for identity in IDENTITIES:
        ca.ensure(identity)
    ca.lost = damage_state_db(ca.state_path)
    ca.files_before = _files(ca.path)
    return ca


def _assert_damaged(err, ca) -> None:
    assert isinstance(err, StoreDamagedError) and isinstance(err, StoreError)
    assert err.code == 'store_damaged'
    assert err.field == 'ca_path'
    assert ca.state_path in err.message
    assert 'damaged' in err.message
    assert 'Backup and recovery' in err.message
    assert 'wrong horse' not in err.message


def test_listing_a_damaged_store_names_the_file(damaged):
    with pytest.raises(StoreError) as err:
        damaged.query()
    _assert_damaged(err.value, damaged)
    assert _files(damaged.path) == damaged.files_before


def test_issuing_into_a_damaged_store_names_the_file_and_writes_nothing(damaged):
    with pytest.raises(StoreError) as err:
        damaged.ensure(damaged.lost[0], valid_days=30)  # a different validity: the engine wants a new certificate
    _assert_damaged(err.value, damaged)
    assert _files(damaged.path) == damaged.files_before


def test_revoking_in_a_damaged_store_names_the_file(damaged):
    with pytest.raises(StoreError) as err:
        damaged.revoke(identity=damaged.lost[0], which='current')
    _assert_damaged(err.value, damaged)
    assert _files(damaged.path) == damaged.files_before


def test_publishing_a_crl_from_a_damaged_store_is_refused(damaged):
    """The CRL reads only revoked rows, which may sit on intact pages: it checks every page first."""
    with pytest.raises(StoreError) as err:
        damaged.publish_crl()
    _assert_damaged(err.value, damaged)
    assert _files(damaged.path) == damaged.files_before


def test_a_failing_rollback_does_not_hide_the_real_error(ca):
    """The transaction's own error reaches the caller even when the ROLLBACK after it fails too."""
    store = SQLiteStore(ca.state_path)

    class Boom(Exception):
        pass

    class Connection:
        def __init__(self, real):
            self.real = real

        def execute(self, sql, params=()):
            if sql in ('ROLLBACK', 'COMMIT'):
                if sql == 'ROLLBACK':
                    self.real.execute(sql)
                raise sqlite3.DatabaseError('database disk image is malformed')
            return self.real.execute(sql, params)

        def close(self):
            self.real.close()

    store._conn = Connection(store._conn)
    with pytest.raises(Boom):
        with store.write():
            raise Boom()
    with pytest.raises(Boom):
        with store.read():
            raise Boom()
    with pytest.raises(StoreDamagedError) as err:
        with store.read():
            pass
    assert ca.state_path in err.value.message
    store.close()
