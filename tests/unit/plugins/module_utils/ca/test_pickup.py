# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pickup credentials (issue 13): a URL and a PIN for an identity's certificate and held key, with real keys, real
PKCS#12 files and a real SQLite store; time moves only through the FakeClock."""

from __future__ import annotations

import json
import os
import plistlib
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certfleet.pki.plugins.module_utils.ca import pickup as pickup_lib
from ansible_collections.certfleet.pki.plugins.module_utils.ca.pickup import PickupError
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, KeyUnavailableError, NotFoundError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import fingerprint

BASE = 'https://pki.example.org'


def create(ca, identity='alice', **options):
    options.setdefault('base_url', BASE)
    with ca.open(unlock=False) as managed:
        return managed.create_pickup(identity=identity, **options)


def token_of(result) -> str:
    return result['url'].rsplit('/p/', 1)[1]


def portal(ca, action, *args, **kwargs):
    with ca.open() as managed:
        return getattr(managed, action)(*args, **kwargs)


def pickups(ca, **options):
    with ca.open(unlock=False) as managed:
        return managed.pickups(**options)


def stored_pickup(ca, pickup_id):
    with ca.open(unlock=False) as managed, managed.store.read():
        return managed.store.get_pickup(pickup_id)


def state_bytes(ca) -> bytes:
    """Every byte SQLite keeps for the state: the database and its write-ahead log."""
    data = b''
    for suffix in ('', '-wal'):
        path = ca.state_path + suffix
        if os.path.exists(path):
            with open(path, 'rb') as handle:
                data += handle.read()
    return data


@pytest.fixture
def issued(ca):
    ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'})
    return ca


def test_create_returns_a_url_and_a_pin_once_and_stores_only_hashes(issued):
    result = create(issued, format='pkcs12-legacy')
    assert result['changed'] is True and result['pin_returned'] is True
    assert result['url'].startswith(BASE + '/p/' + result['pickup_id'] + '.')
    pin, secret = result['pin'], token_of(result).split('.', 1)[1]
    assert len(pin) == 8 and pin.isdigit() and len(secret) == 43
    stored = stored_pickup(issued, result['pickup_id'])
    assert stored.token_hash.startswith('scrypt$16384$8$1$') and stored.pin_hash.startswith('scrypt$16384$8$1$')
    assert pin not in stored.pin_hash and secret not in stored.token_hash
    assert pickup_lib.verify_slow_hash(pin, stored.pin_hash)
    assert not pickup_lib.verify_slow_hash(str(int(pin) ^ 1).zfill(8), stored.pin_hash)
    raw = state_bytes(issued)
    assert result['pickup_id'].encode() in raw  # the handle is stored, so the search below looks at the right bytes
    assert secret.encode() not in raw and pin.encode() not in raw
    assert 'scrypt' not in repr(stored) and pin not in repr(stored)

    again = create(issued, format='pkcs12-legacy')
    assert again['changed'] is False and again['pin_returned'] is False and 'pin' not in again
    assert again['url'] is None and again['pickup_id'] == result['pickup_id']
    assert [p['pickup_id'] for p in pickups(issued)['pickups']] == [result['pickup_id']]


def test_the_audit_log_and_the_listing_hold_no_secret(issued):
    result = create(issued, format='pkcs12-legacy')
    token, pin = token_of(result), result['pin']
    with pytest.raises(PickupError):
        portal(issued, 'check_pickup_pin', token, '00000000' if pin != '00000000' else '11111111', client='10.0.0.9')
    download = portal(issued, 'download_pickup', token, pin, client='10.0.0.9')
    audit_text = json.dumps(issued.audit())
    listing_text = json.dumps(pickups(issued))
    secret = token.split('.', 1)[1]
    for text in (audit_text, listing_text):
        assert pin not in text and secret not in text and 'scrypt$' not in text
        assert download.content.hex() not in text
    actions = [e['action'] for e in issued.audit()]
    assert {'pickup_create', 'pickup_pin', 'pickup_download', 'pickup_close'} <= set(actions)
    assert 'content=' not in repr(download) and str(download.content[:32]) not in repr(download)


def test_a_wrong_pin_is_counted_and_the_last_allowed_one_locks(issued):
    result = create(issued, max_attempts=3)
    token, pin = token_of(result), result['pin']
    wrong = '12345678' if pin != '12345678' else '87654321'
    for left in (2, 1):
        with pytest.raises(PickupError) as err:
            portal(issued, 'check_pickup_pin', token, wrong, client='198.51.100.7')
        assert err.value.code == 'wrong_pin' and err.value.attempts_left == left
    with pytest.raises(PickupError) as err:
        portal(issued, 'check_pickup_pin', token, wrong)
    assert err.value.code == 'pickup_locked'
    stored = stored_pickup(issued, result['pickup_id'])
    assert stored.failed_attempts == 3 and stored.locked_at is not None and stored.close_reason == 'locked'
    with pytest.raises(PickupError) as err:  # locked: even the right PIN opens nothing, with the generic error
        portal(issued, 'download_pickup', token, pin)
    assert err.value.code == 'pickup_unavailable'
    outcomes = [e['outcome'] for e in issued.audit() if e['action'] == 'pickup_pin']
    assert outcomes == ['wrong_pin'] * 3
    assert issued.records('alice')[0].key_status == 'purged'  # the closed pickup took the held key with it
    assert pickups(issued)['counts']['locked'] == 1


def test_the_right_pin_downloads_a_pkcs12_that_opens_with_it_once(issued):
    result = create(issued)  # modern encryption by default
    token, pin = token_of(result), result['pin']
    info = portal(issued, 'open_pickup', token)
    assert info['identity'] == 'alice' and info['downloads_left'] == 1 and info['attempts_left'] == 5
    download = portal(issued, 'download_pickup', token, pin, client='203.0.113.5')
    record = issued.records('alice')[0]
    loaded = pkcs12.load_pkcs12(download.content, pin.encode())
    assert fingerprint(loaded.cert.certificate) == record.fingerprint_sha256
    assert loaded.key.public_key().public_numbers() == loaded.cert.certificate.public_key().public_numbers()
    assert pkcs12.load_pkcs12(download.content, pin.encode()).additional_certs  # the CA comes along
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(download.content, b'00000000' if pin != '00000000' else b'11111111')
    assert download.closed is True and download.filename == 'alice.p12' and download.serial == record.serial
    assert 'Alice Example' in download.subject
    with pytest.raises(PickupError) as err:  # max_downloads 1
        portal(issued, 'download_pickup', token, pin)
    assert err.value.code == 'pickup_unavailable' and str(err.value) == PickupError.UNAVAILABLE
    stored = stored_pickup(issued, result['pickup_id'])
    assert stored.downloads == 1 and stored.first_pickup_at == issued.clock() and stored.close_reason == 'downloaded'
    assert issued.records('alice')[0].key_status == 'purged'
    with issued.open(unlock=False) as managed, managed.store.read():
        assert managed.store.wrapped_key(record.serial) is None
    download_audit = [e for e in issued.audit() if e['action'] == 'pickup_download']
    assert download_audit[0]['detail']['client'] == '203.0.113.5' and download_audit[0]['serials'] == [record.serial]


def test_unknown_wrong_and_malformed_tokens_get_one_generic_error(issued):
    result = create(issued)
    pickup_id = result['pickup_id']
    for token in ('', 'garbage', pickup_id + '.' + 'A' * 43, 'B' * 16 + '.' + token_of(result).split('.')[1]):
        with pytest.raises(PickupError) as err:
            portal(issued, 'open_pickup', token)
        assert err.value.code == 'pickup_unavailable' and str(err.value) == PickupError.UNAVAILABLE


def test_a_second_download_is_allowed_up_to_max_downloads(issued):
    result = create(issued, format='pkcs12-legacy', max_downloads=2)
    token, pin = token_of(result), result['pin']
    first = portal(issued, 'download_pickup', token, pin)
    assert first.closed is False and issued.records('alice')[0].key_status == 'held'
    second = portal(issued, 'download_pickup', token, pin)
    assert second.closed is True and issued.records('alice')[0].key_status == 'purged'


def test_the_window_closes_some_days_after_the_first_pickup(issued):
    result = create(issued, format='pkcs12-legacy', max_downloads=3, lock_after_first_days=3)
    token, pin = token_of(result), result['pin']
    portal(issued, 'download_pickup', token, pin)
    issued.clock.advance(days=2, hours=23)
    portal(issued, 'download_pickup', token, pin)  # still inside the three days
    issued.clock.advance(hours=2)
    with pytest.raises(PickupError) as err:
        portal(issued, 'download_pickup', token, pin)
    assert err.value.code == 'pickup_unavailable'
    stored = stored_pickup(issued, result['pickup_id'])
    assert stored.close_reason == 'expired' and stored.downloads == 2
    assert issued.records('alice')[0].key_status == 'purged'


def test_the_window_closes_some_days_after_issuance_and_expire_pickups_closes_it(issued):
    result = create(issued, lock_after_first_days=None, expire_after_issue_days=10)
    token = token_of(result)
    issued.clock.advance(days=9)
    assert portal(issued, 'open_pickup', token)['pickup_id'] == result['pickup_id']
    assert pickups(issued)['pickups'][0]['state'] == 'open'
    issued.clock.advance(days=1)
    assert pickups(issued)['pickups'][0]['state'] == 'expired'  # by the clock, before anything closed it
    with pytest.raises(PickupError):
        portal(issued, 'open_pickup', token)
    with issued.open(unlock=False) as managed:
        assert managed.expire_pickups(check_mode=True) == {'changed': True, 'expired': [result['pickup_id']]}
        assert managed.store.find_pickups(open_only=True)  # check mode closed nothing
        assert managed.expire_pickups() == {'changed': True, 'expired': [result['pickup_id']]}
        assert managed.expire_pickups() == {'changed': False, 'expired': []}
    assert stored_pickup(issued, result['pickup_id']).close_reason == 'expired'
    assert issued.records('alice')[0].key_status == 'purged'
    assert pickups(issued)['counts'] == {'open': 0, 'picked_up': 0, 'expired': 1, 'locked': 0, 'closed': 0,
                                         'total': 1}


def test_the_window_never_outlasts_the_key_retention(ca):
    ca.ensure('bob', key_retention=5)
    result = create(ca, 'bob', expire_after_issue_days=30)
    record = ca.records('bob')[0]
    assert result['pickup']['expires_at'] == result['pickup']['window_ends_at']
    assert stored_pickup(ca, result['pickup_id']).expires_at == record.key_retain_until


def test_absent_withdraws_the_open_pickups_and_purges_the_key(issued):
    result = create(issued)
    with issued.open(unlock=False) as managed:
        predicted = managed.create_pickup(identity='alice', state='absent', check_mode=True)
    assert predicted == {'changed': True, 'identity': 'alice', 'withdrawn': [result['pickup_id']]}
    assert stored_pickup(issued, result['pickup_id']).closed_at is None
    withdrawn = create(issued, state='absent')
    assert withdrawn['changed'] is True and withdrawn['withdrawn'] == [result['pickup_id']]
    assert stored_pickup(issued, result['pickup_id']).close_reason == 'withdrawn'
    assert create(issued, state='absent')['changed'] is False
    with pytest.raises(PickupError):
        portal(issued, 'open_pickup', token_of(result))
    assert issued.records('alice')[0].key_status == 'purged'
    assert pickups(issued, states=['closed'])['pickups'][0]['close_reason'] == 'withdrawn'


def test_renewal_pickup_and_confirmation_revoke_the_old_serial_on_the_crl(issued):
    old = issued.records('alice')[0]
    first = create(issued, format='pkcs12-legacy')
    renewed = issued.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'}, force=True)
    result = create(issued, format='pkcs12-legacy')
    assert result['changed'] is True and result['renewal_of'] == old.serial and result['serial'] == renewed['serial']
    assert result['superseded'] == [first['pickup_id']]  # the old certificate's pickup closed with it
    assert stored_pickup(issued, first['pickup_id']).close_reason == 'superseded'
    token, pin = token_of(result), result['pin']
    with pytest.raises(PickupError) as err:
        portal(issued, 'confirm_replacement', token=token, by='alice')
    assert err.value.code == 'not_picked_up'
    assert issued.record(old.serial).status == 'valid'  # both valid until the person confirms
    portal(issued, 'download_pickup', token, pin)
    confirmed = portal(issued, 'confirm_replacement', token=token, by='alice')
    assert confirmed['changed'] is True and confirmed['revoked'] == [old.serial]
    revoked = issued.record(old.serial)
    assert revoked.status == 'revoked' and revoked.revocation_reason == 'superseded'
    assert issued.record(renewed['serial']).status == 'valid'
    again = portal(issued, 'confirm_replacement', pickup_id=result['pickup_id'], by='officer')
    assert again['changed'] is False and again['revoked'] == []
    issued.publish_crl(dest=issued.file('pickup.crl'))
    with open(issued.file('pickup.crl'), 'rb') as handle:
        data = handle.read()
    crl = x509.load_pem_x509_crl(data) if data.startswith(b'-----') else x509.load_der_x509_crl(data)
    listed = {format(entry.serial_number, 'X') for entry in crl}
    assert int(old.serial, 16) in {entry.serial_number for entry in crl}, listed
    confirm_audit = [e for e in issued.audit() if e['action'] == 'pickup_confirm']
    assert confirm_audit[0]['detail'] == {'pickup_id': result['pickup_id'], 'confirmed_by': 'alice',
                                          'revoked': [old.serial]}


def test_the_officer_confirms_by_pickup_id_and_a_first_pickup_is_no_renewal(issued):
    first = create(issued)
    with pytest.raises(InputError) as err:
        portal(issued, 'confirm_replacement', pickup_id=first['pickup_id'], by='officer')
    assert err.value.field == 'pickup_id'
    with pytest.raises(NotFoundError):
        portal(issued, 'confirm_replacement', pickup_id='nope', by='officer')
    with pytest.raises(InputError) as err:
        portal(issued, 'confirm_replacement', pickup_id=first['pickup_id'], by=' ')
    assert err.value.field == 'by'


def test_mobileconfig_carries_the_pkcs12_and_the_ca_without_the_pin(issued):
    result = create(issued, format='mobileconfig')
    download = portal(issued, 'download_pickup', token_of(result), result['pin'])
    assert download.filename == 'alice.mobileconfig' and download.media_type == 'application/x-apple-aspen-config'
    profile = plistlib.loads(download.content)
    assert profile['PayloadType'] == 'Configuration' and profile['PayloadUUID'] and profile['PayloadIdentifier']
    assert profile['PayloadDisplayName']
    by_type = {p['PayloadType']: p for p in profile['PayloadContent']}
    assert set(by_type) == {'com.apple.security.pkcs12', 'com.apple.security.root'}
    identity_payload = by_type['com.apple.security.pkcs12']
    assert 'Password' not in identity_payload  # the device asks for the PIN
    assert result['pin'].encode() not in download.content
    loaded = pkcs12.load_pkcs12(identity_payload['PayloadContent'], result['pin'].encode())
    assert fingerprint(loaded.cert.certificate) == issued.records('alice')[0].fingerprint_sha256
    with issued.open(unlock=False) as managed:
        ca_certificate = managed.authority.certificate
    root = x509.load_der_x509_certificate(by_type['com.apple.security.root']['PayloadContent'])
    assert fingerprint(root) == fingerprint(ca_certificate)


@pytest.mark.parametrize('options, field', [
    ({'base_url': None}, 'base_url'),
    ({'base_url': 'ftp://pki.example.org'}, 'base_url'),
    ({'base_url': 'http://pki.example.org'}, 'base_url'),
    ({'base_url': 'https://pki.example.org/?x=1'}, 'base_url'),
    ({'format': 'zip'}, 'format'),
    ({'max_downloads': 0}, 'max_downloads'),
    ({'max_attempts': 'many'}, 'max_attempts'),
    ({'lock_after_first_days': -1}, 'lock_after_first_pickup_days'),
    ({'expire_after_issue_days': 0}, 'expire_after_issue_days'),
    ({'state': 'gone'}, 'state'),
    ({'identity': ''}, 'identity'),
])
def test_bad_input_names_the_field_and_writes_nothing(issued, options, field):
    before = issued.snapshot()
    options = dict({'identity': 'alice', 'base_url': BASE}, **options)
    with pytest.raises(InputError) as err, issued.open(unlock=False) as managed:
        managed.create_pickup(**options)
    assert err.value.field == field
    assert issued.snapshot() == before


def test_an_identity_without_a_held_key_or_certificate_is_refused(ca, tmp_path):
    with pytest.raises(NotFoundError) as err:
        create(ca, 'nobody')
    assert err.value.field == 'identity'
    ca.ensure('kiosk', key_retention=1)
    ca.clock.advance(days=2)
    before = ca.snapshot()
    with pytest.raises(KeyUnavailableError) as err:
        create(ca, 'kiosk')
    assert err.value.field == 'identity' and ca.snapshot() == before


def test_issuance_window_already_passed_is_refused(ca):
    ca.ensure('carol', key_retention=90)
    ca.clock.advance(days=31)
    with pytest.raises(InputError) as err:
        create(ca, 'carol', expire_after_issue_days=30)
    assert err.value.field == 'expire_after_issue_days'
    assert create(ca, 'carol', expire_after_issue_days=40)['changed'] is True


def test_check_mode_writes_nothing(issued):
    before = issued.snapshot()
    predicted = create(issued, check_mode=True)
    assert predicted['changed'] is True and predicted['url'] is None and 'pin' not in predicted
    assert issued.snapshot() == before


def test_the_pin_goes_to_a_private_file_instead_of_the_result(issued, tmp_path):
    pin_file = tmp_path / 'pins' / 'alice.pin'
    result = create(issued, pin_file=str(pin_file))
    assert result['pin_returned'] is False and 'pin' not in result and result['pin_file'] == str(pin_file)
    pin = pin_file.read_text().strip()
    assert len(pin) == 8 and pin.isdigit() and pin not in json.dumps(result)
    assert stat.S_IMODE(os.stat(pin_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pin_file.parent).st_mode) == 0o700
    assert portal(issued, 'check_pickup_pin', token_of(result), pin)['pickup_id'] == result['pickup_id']


def test_a_pin_file_in_a_folder_others_can_read_is_refused_before_anything(issued, tmp_path):
    shared = tmp_path / 'shared'
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    before = issued.snapshot()
    with pytest.raises(InputError) as err:
        create(issued, pin_file=str(shared / 'alice.pin'))
    assert err.value.field == 'pin_file' and issued.snapshot() == before and not os.listdir(shared)


def test_token_and_pin_hashes_are_salted_and_checked(issued):
    first, second = pickup_lib.slow_hash('12345678'), pickup_lib.slow_hash('12345678')
    assert first != second  # salted
    assert pickup_lib.verify_slow_hash('12345678', first) and pickup_lib.verify_slow_hash('12345678', second)
    assert not pickup_lib.verify_slow_hash('12345679', first)
    assert not pickup_lib.verify_slow_hash('12345678', 'md5$x') and not pickup_lib.verify_slow_hash('1', 'garbage')


def test_the_pickup_flow_on_a_postgresql_store(postgresql_server, postgresql_database, clock):
    """The same rules with the whole CA in PostgreSQL: create, a wrong PIN, a download, the renewal confirmed."""
    from conftest import CA_SUBJECT, CAHarness, PASSPHRASE  # pylint: disable=import-error
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
    store_url = postgresql_server.url(postgresql_database)
    created = ensure_ca(store_url=store_url, ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT), key_type='ec-p256',
                        clock=clock)
    shared = CAHarness(None, PASSPHRASE, clock, created, store_url=store_url)
    old = shared.ensure('dave')
    shared.ensure('dave', force=True)
    result = create(shared, 'dave', format='pkcs12-legacy')
    assert result['renewal_of'] == old['serial'] and create(shared, 'dave')['changed'] is False
    token, pin = token_of(result), result['pin']
    with pytest.raises(PickupError) as err:
        portal(shared, 'check_pickup_pin', token, str(int(pin) ^ 1).zfill(8))
    assert err.value.code == 'wrong_pin' and err.value.attempts_left == 4
    download = portal(shared, 'download_pickup', token, pin)
    assert pkcs12.load_pkcs12(download.content, pin.encode()).cert is not None
    with pytest.raises(PickupError):
        portal(shared, 'download_pickup', token, pin)
    assert portal(shared, 'confirm_replacement', token=token, by='dave')['revoked'] == [old['serial']]
    assert shared.record(old['serial']).status == 'revoked'
    assert pickups(shared)['counts']['picked_up'] == 1


def test_a_pin_file_that_cannot_be_written_closes_the_new_pickup(issued, tmp_path, monkeypatch):
    from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import WriteError

    def refuse(path, *args, **kwargs):
        raise WriteError('cannot write %s: No space left on device' % path, 'pin_file', path=path)

    monkeypatch.setattr(pickup_lib, 'atomic_write', refuse)
    with pytest.raises(WriteError) as err:
        create(issued, pin_file=str(tmp_path / 'pins' / 'alice.pin'))
    assert err.value.field == 'pin_file'
    listed = pickups(issued)['pickups']
    assert len(listed) == 1 and listed[0]['close_reason'] == 'pin_lost' and listed[0]['open'] is False
    assert issued.records('alice')[0].key_status == 'purged'  # the key went with the closed pickup


def test_a_pickup_downloaded_once_of_two_lists_as_picked_up_and_open(issued):
    result = create(issued, format='pkcs12-legacy', max_downloads=2)
    portal(issued, 'download_pickup', token_of(result), result['pin'])
    entry = pickups(issued, states=['picked_up'])['pickups'][0]
    assert entry['open'] is True and entry['downloads'] == 1 and entry['first_pickup_at'] is not None
    assert pickups(issued, states=['open'])['pickups'] == []
    with pytest.raises(InputError) as err:
        pickups(issued, states=['open', 'gone'])
    assert err.value.field == 'states[1]'
