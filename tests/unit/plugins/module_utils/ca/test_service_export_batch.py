# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.export_many: one PKCS#12 per item from one call, with given or generated passwords."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509

from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BULK_ITERATIONS
from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, KeyUnavailableError, NotFoundError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import fingerprint

PASSWORD = 'batch export pass'
FAST = 1000


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _exports(ca):
    return [e for e in ca.audit() if e['action'] == 'export']


def _export_many(ca, **params):
    with ca.open() as managed:
        return managed.export_many(**params)


@pytest.fixture
def fleet(ca):
    serials = {name: ca.ensure(name)['serial'] for name in ('alice', 'bob', 'carol')}
    return ca, serials


def _files(folder) -> dict:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_generated_passwords_happy_path_idempotent(fleet, tmp_path):
    ca, serials = fleet
    out = tmp_path / 'out'
    batch = [{'identity': 'alice'}, {'serial': serials['bob'].lower()}, {'identity': 'carol', 'file': 'c.pfx',
                                                                         'friendly_name': 'Carol (kiosk)'}]
    first = _export_many(ca, batch=batch, dest_dir=str(out), generate_passwords=True)
    assert first['changed'] is True
    assert first['iterations'] == BULK_ITERATIONS['modern'] == 2048
    assert _mode(out) == 0o700
    assert sorted(os.listdir(out)) == ['alice.p12', 'alice.p12.password', 'bob.p12', 'bob.p12.password', 'c.pfx',
                                       'c.pfx.password']
    assert [e['identity'] for e in first['exports']] == ['alice', 'bob', 'carol']
    assert [e['serial'] for e in first['exports']] == [serials['alice'], serials['bob'], serials['carol']]
    passwords = set()
    for entry in first['exports']:
        assert entry['changed'] is True
        assert _mode(entry['dest']) == 0o600 and _mode(entry['password_file']) == 0o600
        password = open(entry['password_file'], encoding='utf-8').read().strip()
        passwords.add(password)
        data = open(entry['dest'], 'rb').read()
        assert pkcs12_lib.describe(data)['iterations'] == 2048
        loaded = pkcs12_lib.load(data, password)
        assert '%X' % loaded.cert.certificate.serial_number == entry['serial']
        assert entry['fingerprint_sha256'] == fingerprint(loaded.cert.certificate)
        assert public_keys_match(loaded.key.public_key(), loaded.cert.certificate.public_key())
        assert password not in repr(first)
    assert len(passwords) == 3  # one per file
    assert pkcs12_lib.load((out / 'c.pfx').read_bytes(),
                           (out / 'c.pfx.password').read_text().strip()).cert.friendly_name == b'Carol (kiosk)'
    assert len(_exports(ca)) == 3
    audit = repr(ca.audit())
    assert not any(p in audit for p in passwords)

    files = _files(out)
    again = _export_many(ca, batch=batch, dest_dir=str(out), generate_passwords=True)
    assert again['changed'] is False and not any(e['changed'] for e in again['exports'])
    assert _files(out) == files
    assert len(_exports(ca)) == 3


def test_given_password_and_partial_rewrite(fleet, tmp_path):
    ca, _serials = fleet
    out = tmp_path / 'out'
    batch = [{'identity': 'alice'}, {'identity': 'bob'}]
    first = _export_many(ca, batch=batch, dest_dir=str(out), password=PASSWORD, iterations=FAST, include_chain=False)
    assert first['changed'] is True and first['iterations'] == FAST and first['includes_chain'] is False
    assert sorted(os.listdir(out)) == ['alice.p12', 'bob.p12']
    assert all(e['password_file'] is None for e in first['exports'])
    loaded = pkcs12_lib.load((out / 'bob.p12').read_bytes(), PASSWORD)
    assert loaded.additional_certs == []
    bob = (out / 'bob.p12').read_bytes()
    # alice renewed: only her file is rewritten
    renewed = ca.ensure('alice', force=True)
    again = _export_many(ca, batch=batch, dest_dir=str(out), password=PASSWORD, iterations=FAST, include_chain=False)
    assert [e['changed'] for e in again['exports']] == [True, False]
    assert again['exports'][0]['serial'] == renewed['serial']
    assert (out / 'bob.p12').read_bytes() == bob
    # the default rounds for a chosen password stay the strong ones
    strong = _export_many(ca, batch=[{'identity': 'carol'}], dest_dir=str(out), password=PASSWORD)
    assert strong['iterations'] == pkcs12_lib.DEFAULT_ITERATIONS['modern']


def test_modes_are_tightened(fleet, tmp_path):
    ca, _serials = fleet
    out = tmp_path / 'out'
    batch = [{'identity': 'alice'}]
    _export_many(ca, batch=batch, dest_dir=str(out), generate_passwords=True)
    data = (out / 'alice.p12').read_bytes()
    os.chmod(out / 'alice.p12.password', 0o644)
    os.chmod(out, 0o755)
    result = _export_many(ca, batch=batch, dest_dir=str(out), generate_passwords=True)
    assert result['changed'] is True
    assert _mode(out) == 0o700 and _mode(out / 'alice.p12.password') == 0o600
    assert (out / 'alice.p12').read_bytes() == data  # not rewritten
    assert len(_exports(ca)) == 1


def test_lost_password_file_rewrites_the_export(fleet, tmp_path):
    ca, _serials = fleet
    out = tmp_path / 'out'
    _export_many(ca, batch=[{'identity': 'alice'}], dest_dir=str(out), generate_passwords=True)
    (out / 'alice.p12.password').unlink()
    result = _export_many(ca, batch=[{'identity': 'alice'}], dest_dir=str(out), generate_passwords=True)
    assert result['changed'] is True
    password = (out / 'alice.p12.password').read_text().strip()
    assert pkcs12_lib.load((out / 'alice.p12').read_bytes(), password) is not None


def test_check_mode_writes_nothing_and_predicts(fleet, tmp_path):
    ca, _serials = fleet
    out = tmp_path / 'out'
    before = ca.snapshot()
    batch = [{'identity': 'alice'}, {'identity': 'bob'}]
    predicted = _export_many(ca, batch=batch, dest_dir=str(out), generate_passwords=True, check_mode=True)
    assert predicted['changed'] is True and all(e['changed'] for e in predicted['exports'])
    assert [e['dest'] for e in predicted['exports']] == [str(out / 'alice.p12'), str(out / 'bob.p12')]
    assert not out.exists()
    assert ca.snapshot() == before
    _export_many(ca, batch=batch[:1], dest_dir=str(out), generate_passwords=True)
    files = _files(out)
    predicted = _export_many(ca, batch=batch, dest_dir=str(out), generate_passwords=True, check_mode=True)
    assert [e['changed'] for e in predicted['exports']] == [False, True]
    assert _files(out) == files


@pytest.mark.parametrize('params, error, field', [
    ({'batch': 'alice'}, InputError, 'batch'),
    ({'batch': [{'identity': 'alice'}, 'bob']}, InputError, 'batch[1]'),
    ({'batch': [{'identity': 'alice'}, {'identity': 'bob', 'serial': 'AB'}]}, InputError, 'batch[1]'),
    ({'batch': [{'identity': 'alice'}, {}]}, InputError, 'batch[1]'),
    ({'batch': [{'identity': 'alice'}, {'identity': 'bob', 'dest': '/tmp/x'}]}, InputError, 'batch[1]'),
    ({'batch': [{'identity': 'alice'}, {'identity': 'nobody'}]}, NotFoundError, 'batch[1].identity'),
    ({'batch': [{'identity': 'alice'}, {'serial': 'ABCDEF'}]}, NotFoundError, 'batch[1].serial'),
    ({'batch': [{'identity': 'alice'}, {'serial': 'xyz'}]}, InputError, 'batch[1].serial'),
    ({'batch': [{'identity': 'alice'}, {'identity': 'bob', 'file': '../bob.p12'}]}, InputError, 'batch[1].file'),
    ({'batch': [{'identity': 'alice'}, {'identity': 'bob', 'file': 'alice.p12'}]}, InputError, 'batch[1].file'),
    ({'batch': [{'identity': 'alice'}, {'identity': 'alice'}]}, InputError, 'batch[1].file'),
    ({'generate_passwords': False}, InputError, 'password'),
    ({'password': 'x'}, InputError, 'password'),
    ({'format': 'pem'}, InputError, 'format'),
    ({'encryption': 'rc2'}, InputError, 'encryption'),
    ({'iterations': 10}, InputError, 'iterations'),
    ({'friendly_name': 'all the same'}, InputError, 'friendly_name'),
    ({'dest_dir': '{tmp}/missing/out'}, InputError, 'dest_dir'),
    ({'dest_dir': None}, InputError, 'dest_dir'),
])
def test_bad_item_anywhere_writes_nothing(fleet, tmp_path, params, error, field):
    ca, _serials = fleet
    request = {'batch': [{'identity': 'alice'}, {'identity': 'bob'}], 'dest_dir': '{tmp}/out',
               'generate_passwords': True}
    request.update(params)
    if isinstance(request['dest_dir'], str):
        request['dest_dir'] = request['dest_dir'].format(tmp=tmp_path)
    before = ca.snapshot()
    with pytest.raises(error) as err:
        _export_many(ca, **request)
    assert err.value.field == field
    assert sorted(os.listdir(tmp_path)) == ['ca']
    assert ca.snapshot() == before


def test_revoked_or_keyless_item_writes_nothing(fleet, tmp_path):
    ca, serials = fleet
    ca.revoke(serial=serials['bob'], reason='key_compromise')
    with pytest.raises(InputError) as err:
        _export_many(ca, batch=[{'identity': 'alice'}, {'serial': serials['bob']}], dest_dir=str(tmp_path / 'out'),
                     generate_passwords=True)
    assert err.value.field == 'batch[1].serial' and 'revoked' in str(err.value)
    assert not (tmp_path / 'out').exists()
    ca.clock.advance(days=400)  # carol's key retention (and certificate) ended
    with pytest.raises(KeyUnavailableError) as err:
        _export_many(ca, batch=[{'identity': 'carol'}], dest_dir=str(tmp_path / 'out'), generate_passwords=True)
    assert err.value.field == 'batch[0].identity' and err.value.code == 'key_purged'
    assert not (tmp_path / 'out').exists()


def test_dest_dir_that_is_a_file(fleet, tmp_path):
    ca, _serials = fleet
    (tmp_path / 'out').write_text('x')
    with pytest.raises(InputError) as err:
        _export_many(ca, batch=[{'identity': 'alice'}], dest_dir=str(tmp_path / 'out'), generate_passwords=True)
    assert err.value.field == 'dest_dir'


def test_chain_is_in_every_file(fleet, tmp_path):
    ca, _serials = fleet
    out = tmp_path / 'out'
    result = _export_many(ca, batch=[{'identity': 'alice'}], dest_dir=str(out), password=PASSWORD, iterations=FAST)
    loaded = pkcs12_lib.load((out / 'alice.p12').read_bytes(), PASSWORD)
    ca_certificate = x509.load_pem_x509_certificate(open(ca.file('ca.pem'), 'rb').read())
    assert [c.certificate for c in loaded.additional_certs] == [ca_certificate]
    assert result['includes_chain'] is True


def test_empty_batch_is_nothing_to_do(fleet, tmp_path):
    ca, _serials = fleet
    result = _export_many(ca, batch=[], dest_dir=str(tmp_path / 'out'), generate_passwords=True)
    assert result['changed'] is False and result['exports'] == []
    assert not (tmp_path / 'out').exists()
