# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store factory: the CA configuration chooses the engine; nobody else constructs one."""

from __future__ import annotations

import os

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, StoreError
from ansible_collections.certfleet.pki.plugins.module_utils.store import factory
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import CertificateStore
from ansible_collections.certfleet.pki.plugins.module_utils.store.sqlite import SQLiteStore


def test_without_a_url_the_store_is_state_db_in_ca_path(tmp_path):
    assert not factory.store_exists(ca_path=str(tmp_path))
    new = factory.open_store(ca_path=str(tmp_path), create=True)
    new.activate()
    assert factory.store_exists(ca_path=str(tmp_path))
    store = factory.open_store(ca_path=str(tmp_path))
    try:
        assert isinstance(store, SQLiteStore) and isinstance(store, CertificateStore)
        assert store.location == os.path.join(str(tmp_path), 'state.db')
    finally:
        store.close()


def test_a_missing_store_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match='does not exist'):
        factory.open_store(ca_path=str(tmp_path))


def test_ca_path_is_required_without_a_url():
    for call in (factory.open_store, factory.store_exists):
        with pytest.raises(InputError) as err:
            call()
        assert err.value.field == 'ca_path'


@pytest.mark.parametrize('url, expected', [
    ('oracle://certfleet:s3cret-pw@db.example.org:1521/pki', "scheme 'oracle' is not supported"),
    ('mysql://certfleet:s3cret-pw@db.example.org/pki', "scheme 'mysql' is not supported"),
    ('certfleet:s3cret-pw@db.example.org', 'is not a store URL'),
])
def test_an_unknown_store_url_is_refused_without_repeating_it(tmp_path, url, expected):
    for call in (factory.open_store, factory.store_exists):
        with pytest.raises(InputError) as err:
            call(ca_path=str(tmp_path), store_url=url)
        assert err.value.field == 'ca_store' and err.value.code == 'invalid_input'
        assert expected in err.value.message
        assert 's3cret-pw' not in err.value.message and 'db.example.org' not in err.value.message
    assert os.listdir(str(tmp_path)) == []


def test_a_registered_shared_store_is_chosen_by_scheme(tmp_path, monkeypatch):
    """How the next engine plugs in: callers keep calling open_store(ca_path=..., store_url=...)."""
    opened = []
    monkeypatch.setitem(factory.SHARED_STORES, 'postgresql', lambda: {
        'open': lambda url, create, prefetch_meta, prefetch_identity: opened.append(
            (url, create, list(prefetch_meta), prefetch_identity)) or 'a store',
        'exists': lambda url: True,
    })
    url = 'postgresql:///pki?host=/run/postgresql'
    assert factory.open_store(store_url=url, create=True) == 'a store'
    assert factory.open_store(store_url=url, prefetch_meta=('config',), prefetch_identity='alice') == 'a store'
    assert factory.store_exists(ca_path=str(tmp_path), store_url=url) is True
    assert opened == [(url, True, [], None), (url, False, ['config'], 'alice')]


def test_an_embedded_store_run_never_imports_psycopg(tmp_path):
    """psycopg's import costs every module run about 0.13 s: only a PostgreSQL store URL loads it."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    probe = ('import sys\n'
             'from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA\n'
             'from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkRequest\n'
             'from ansible_collections.certfleet.pki.plugins.module_utils.store import factory\n'
             'factory.open_store(ca_path=sys.argv[1], create=True).discard()\n'
             'print(sorted(name for name in sys.modules if name.split(".")[0] == "psycopg"))\n'
             'factory.store_name("postgresql://u:pw@db.example.org/pki")\n'
             'print("psycopg" in sys.modules)\n')
    done = subprocess.run([sys.executable, '-c', probe, str(tmp_path)], capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.splitlines()
    assert before == '[]'
    assert after == 'True'  # a store URL loads the engine, and psycopg with it
