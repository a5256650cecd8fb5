# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole CA in a shared store (ca_store): created, used and published with no CA directory at all, on a real
PostgreSQL server."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca.home import OBJECT_PREFIX
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CAError, InputError, PassphraseError, StoreError,
)

from conftest import CA_SUBJECT, CAHarness, PASSPHRASE  # pylint: disable=import-error

pytestmark = pytest.mark.usefixtures('postgresql_server')


@pytest.fixture
def store_url(postgresql_server, postgresql_database):
    from postgresql_server import PASSWORD, PASSWORD_ROLE  # pylint: disable=import-error
    return postgresql_server.url(postgresql_database, user=PASSWORD_ROLE, password=PASSWORD)


def _create(store_url, clock, **params):
    return ensure_ca(store_url=store_url, ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT), key_type='ec-p256',
                     clock=clock, **params)


def _harness(store_url, clock) -> CAHarness:
    return CAHarness(None, PASSPHRASE, clock, _create(store_url, clock), store_url=store_url)


def _objects(postgresql_server, store_url) -> dict:
    dbname = store_url.split('/')[3].split('?')[0]
    with postgresql_server.admin(dbname) as conn:
        rows = conn.execute("SELECT key, value FROM certfleet.meta WHERE key LIKE %s", (OBJECT_PREFIX + '%',))
        return {key[len(OBJECT_PREFIX):]: base64.b64decode(json.loads(value)) for key, value in rows}


def test_create_is_idempotent_and_names_the_store_without_its_password(store_url, clock):
    from postgresql_server import PASSWORD  # pylint: disable=import-error
    created = _create(store_url, clock)
    assert created['changed'] is True and created['action'] == 'created'
    assert created['ca_path'] is None
    assert created['ca_store'].startswith('postgresql://') and PASSWORD not in created['ca_store']
    again = _create(store_url, clock)
    assert again['changed'] is False and again['action'] == 'none'
    assert again['ca']['fingerprint_sha256'] == created['ca']['fingerprint_sha256']
    assert PASSWORD not in json.dumps(created) + json.dumps(again)


def test_the_key_is_kept_encrypted_in_the_store(postgresql_server, store_url, clock):
    _create(store_url, clock)
    objects = _objects(postgresql_server, store_url)
    assert set(objects) == {'ca.key', 'ca.pem'}
    assert objects['ca.key'].startswith(b'-----BEGIN ENCRYPTED PRIVATE' + b' KEY-----')
    assert PASSPHRASE.encode() not in objects['ca.key']
    with pytest.raises(PassphraseError) as wrong:
        ManagedCA(ca_passphrase='not the passphrase', clock=clock, store_url=store_url)
    assert wrong.value.code == 'wrong_passphrase' and wrong.value.field == 'ca_passphrase'


def test_issue_revoke_and_publish_with_no_ca_directory(store_url, clock, tmp_path):
    ca = _harness(store_url, clock)
    first = ca.ensure('alice')
    second = ca.ensure('alice')
    assert first['changed'] is True and second['changed'] is False
    assert second['serial'] == first['serial']
    revoked = ca.revoke(identity='alice', which='current', reason='key_compromise')
    published = ca.publish_crl(dest=str(tmp_path / 'ca.crl'), format='der')
    assert revoked['changed'] is True
    assert published['regenerated'] is True and published['revoked_count'] == 1
    assert published['crl_pem_path'] is None and published['crl_der_path'] is None
    unchanged = ca.publish_crl(dest=str(tmp_path / 'ca.crl'), format='der')
    assert unchanged['changed'] is False and unchanged['crl_number'] == published['crl_number']


def test_info_needs_no_passphrase(store_url, clock):
    ca = _harness(store_url, clock)
    ca.ensure('bob')
    with ManagedCA(clock=clock, unlock=False, store_url=store_url) as opened:
        found = opened.query(identity='bob')
    assert [c['identity'] for c in found['certificates']] == ['bob']


def test_ca_path_and_ca_store_together_or_neither_are_refused(store_url, clock, tmp_path):
    with pytest.raises(InputError) as both:
        ensure_ca(ca_path=str(tmp_path / 'ca'), store_url=store_url, ca_passphrase=PASSPHRASE,
                  subject=dict(CA_SUBJECT), clock=clock)
    assert both.value.field == 'ca_store' and 'not both' in str(both.value)
    with pytest.raises(InputError) as neither:
        ensure_ca(ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT), clock=clock)
    assert neither.value.field == 'ca_path'
    assert not (tmp_path / 'ca').exists()


def test_a_store_without_a_ca_says_how_to_make_one(store_url, clock):
    from postgresql_server import PASSWORD  # pylint: disable=import-error
    with pytest.raises(CAError) as missing:
        ManagedCA(ca_passphrase=PASSPHRASE, clock=clock, store_url=store_url)
    assert missing.value.field == 'ca_store' and 'certfleet.pki.ca' in str(missing.value)
    assert PASSWORD not in str(missing.value)


@pytest.mark.parametrize('engine', ['sqlite', 'postgresql'])
def test_a_restored_backup_never_unrevokes_what_dest_serves(engine, postgresql_server, postgresql_database, clock,
                                                            tmp_path):
    """The whole CA restored from a backup (its own CRL included) lacks a revocation that the CRL at dest lists:
    publishing to dest is refused, on both engines, and dest keeps the newer CRL."""
    import shutil
    dest = str(tmp_path / 'served.crl')
    if engine == 'sqlite':
        path = str(tmp_path / 'ca')
        ca = CAHarness(path, PASSPHRASE, clock, ensure_ca(ca_path=path, ca_passphrase=PASSPHRASE, clock=clock,
                                                          subject=dict(CA_SUBJECT), key_type='ec-p256'))
    else:
        ca = _harness(postgresql_server.url(postgresql_database), clock)
    ca.ensure('alice')
    ca.ensure('bob')
    first = ca.publish_crl(dest=dest)
    if engine == 'sqlite':
        shutil.copytree(path, str(tmp_path / 'backup'))
    else:
        with postgresql_server.admin() as conn:
            conn.execute('CREATE DATABASE backup_copy TEMPLATE %s' % postgresql_database)
    ca.revoke(identity='bob', which='current', reason='key_compromise')
    newer = ca.publish_crl(dest=dest)
    assert newer['revoked_count'] == 1 and newer['crl_number'] == first['crl_number'] + 1
    served = open(dest, 'rb').read()
    if engine == 'sqlite':
        shutil.rmtree(path)
        shutil.copytree(str(tmp_path / 'backup'), path)
    else:
        ca.store_url = postgresql_server.url('backup_copy')
    try:
        with pytest.raises(StoreError) as refused:
            ca.publish_crl(dest=dest)
        assert refused.value.code == 'crl_would_unrevoke' and dest in str(refused.value)
        assert open(dest, 'rb').read() == served
        ca.revoke(identity='bob', which='current', reason='key_compromise')  # what the message says to do
        again = ca.publish_crl(dest=dest)
        assert again['revoked_count'] == 1 and again['crl_number'] > newer['crl_number']
    finally:
        if engine == 'postgresql':
            postgresql_server.drop_database('backup_copy')
