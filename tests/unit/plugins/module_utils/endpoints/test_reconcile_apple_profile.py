# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Apple profile store of the reconcile call: profile files read back with plistlib, their PKCS#12 opened with
OpenSSL, beside a real Firefox NSS database (certutil, pk12util) for the host's release rule."""

from __future__ import annotations

import os
import plistlib
import stat
import subprocess

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import UnsafePathError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import reconcile

from test_reconcile import P12_PASSWORD, Fleet, held, store  # pylint: disable=import-error

OTHER_PASSWORD = 'the next run has another one-time password'


@pytest.fixture
def fleet(ca, make_ca, tmp_path) -> Fleet:
    return Fleet(ca, make_ca, tmp_path)


def profile_of(fleet, tmp_path, *, p12=None, password=P12_PASSWORD, fingerprint=None, include=True, **extra):
    wanted = {'identity': 'alice', 'fingerprint_sha256': fingerprint or fleet.alice['fingerprint_sha256'],
              'apple_profile_dest': str(tmp_path / 'mdm' / 'alice.mobileconfig'),
              'apple_profile_include_password': include}
    if p12:
        wanted.update(pkcs12_path=p12, pkcs12_password=password)
    wanted.update(extra)
    return wanted


def embedded_certificate(path, tmp_path) -> str:
    """The SHA-256 fingerprint OpenSSL reads from the profile's PKCS#12, opened with the password it carries."""
    with open(path, 'rb') as handle:
        profile = plistlib.load(handle)
    payload = next(p for p in profile['PayloadContent'] if p['PayloadType'] == 'com.apple.security.pkcs12')
    extracted = tmp_path / 'embedded.p12'
    extracted.write_bytes(payload['PayloadContent'])
    pem = subprocess.run(['openssl', 'pkcs12', '-in', str(extracted), '-passin', 'pass:' + payload['Password'],
                          '-nokeys', '-clcerts', '-legacy'], capture_output=True, check=True).stdout
    out = subprocess.run(['openssl', 'x509', '-noout', '-fingerprint', '-sha256'], input=pem, capture_output=True,
                         check=True).stdout.decode()
    return out.strip().split('=', 1)[1].replace(':', '')


@pytest.fixture
def mdm(tmp_path):
    folder = tmp_path / 'mdm'
    folder.mkdir(mode=0o700)
    return folder


def test_a_missing_profile_is_written_and_then_left_alone_under_another_one_time_password(fleet, tmp_path, mdm):
    wanted = profile_of(fleet, tmp_path, p12=fleet.alice_p12)
    first = fleet.run([wanted], stores=['apple_profile'])
    outcome = store(first, 'apple_profile')
    assert outcome['imported'] == ['alice'] and outcome['created'] is True and outcome['problems'] == []
    assert outcome['identity'] == 'alice' and first['changed'] is True
    path = wanted['apple_profile_dest']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert embedded_certificate(path, tmp_path) == fleet.alice['fingerprint_sha256']
    before = open(path, 'rb').read()

    # The next run exports under another one-time password: the profile is read, found current, and kept.
    rewrapped = str(tmp_path / 'alice-next.p12')
    fleet.ca.export(identity='alice', dest=rewrapped, password=OTHER_PASSWORD, iterations=1000)
    again = fleet.run([profile_of(fleet, tmp_path, p12=rewrapped, password=OTHER_PASSWORD)], stores=['apple_profile'])
    assert again['changed'] is False and store(again, 'apple_profile')['present'] == ['alice']
    assert open(path, 'rb').read() == before and again['diff'] == []


def test_a_profile_with_the_superseded_certificate_is_replaced_and_the_old_one_reported(fleet, tmp_path, mdm):
    old = profile_of(fleet, tmp_path, p12=fleet.alice_old_p12, fingerprint=fleet.alice_old['fingerprint_sha256'])
    fleet.run([old], stores=['apple_profile'])
    result = fleet.run([profile_of(fleet, tmp_path, p12=fleet.alice_p12)], stores=['apple_profile'])
    outcome = store(result, 'apple_profile')
    assert outcome['imported'] == ['alice'] and outcome['created'] is False
    assert [(r['serial'], r['reason']) for r in outcome['removed']] == [(fleet.alice_old['serial'], 'superseded')]
    assert embedded_certificate(old['apple_profile_dest'], tmp_path) == fleet.alice['fingerprint_sha256']


def test_without_a_pkcs12_the_old_profile_waits_and_a_revoked_one_is_deleted(fleet, tmp_path, mdm):
    old = profile_of(fleet, tmp_path, p12=fleet.alice_old_p12, fingerprint=fleet.alice_old['fingerprint_sha256'])
    fleet.run([old], stores=['apple_profile'])
    path = old['apple_profile_dest']
    waiting = fleet.run([profile_of(fleet, tmp_path)], stores=['apple_profile'])
    outcome = store(waiting, 'apple_profile')
    assert outcome['missing'] == ['alice'] and outcome['deferred'][0]['reason'] == 'superseded'
    assert waiting['changed'] is False and os.path.exists(path)

    checked = fleet.run([profile_of(fleet, tmp_path)], stores=['apple_profile'], check_mode=True,
                        revoked_serials=[fleet.alice_old['serial']])
    assert store(checked, 'apple_profile')['removed'][0]['reason'] == 'revoked' and os.path.exists(path)
    revoked = fleet.run([profile_of(fleet, tmp_path)], stores=['apple_profile'],
                        revoked_serials=[fleet.alice_old['serial']])
    assert store(revoked, 'apple_profile')['removed'][0]['reason'] == 'revoked' and revoked['changed'] is True
    assert not os.path.exists(path)


def test_check_mode_predicts_the_write_and_writes_nothing(fleet, tmp_path, mdm):
    result = fleet.run([profile_of(fleet, tmp_path, p12=fleet.alice_p12)], stores=['apple_profile'], check_mode=True)
    assert store(result, 'apple_profile')['imported'] == ['alice'] and result['changed'] is True
    assert os.listdir(str(mdm)) == []
    assert result['diff'] and '(write)' in result['diff'][0]['after']


def test_no_profile_is_written_without_include_password_and_that_is_the_stores_problem(fleet, tmp_path, mdm):
    result = fleet.run([profile_of(fleet, tmp_path, p12=fleet.alice_p12, include=False)], stores=['apple_profile'])
    outcome = store(result, 'apple_profile')
    assert outcome['missing'] == ['alice'] and 'apple_profile_include_password' in outcome['problems'][0]
    assert os.listdir(str(mdm)) == []


def test_a_profile_of_another_issuer_is_left_alone(fleet, tmp_path, mdm):
    foreign = profile_of(fleet, tmp_path, p12=fleet.foreign_p12, fingerprint=fleet.foreign['fingerprint_sha256'])
    path = foreign['apple_profile_dest']
    # Written as by hand with certfleet.pki.apple_profile: another CA's identity, its password embedded.
    from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.apple_profile import ensure_apple_profile
    ensure_apple_profile(dest=path, identity='alice', pkcs12_path=fleet.foreign_p12, pkcs12_password=P12_PASSWORD,
                         include_password=True)
    before = open(path, 'rb').read()
    result = fleet.run([profile_of(fleet, tmp_path, p12=fleet.alice_p12)], stores=['apple_profile'])
    outcome = store(result, 'apple_profile')
    assert outcome['foreign'] and 'another issuer' in outcome['problems'][0] and outcome['imported'] == []
    assert open(path, 'rb').read() == before


def test_a_symlink_at_the_destination_is_refused_before_any_store(fleet, tmp_path, mdm):
    target = tmp_path / 'elsewhere'
    target.write_bytes(b'not yours')
    os.symlink(str(target), str(mdm / 'alice.mobileconfig'))
    with pytest.raises(UnsafePathError) as refused:
        fleet.run([profile_of(fleet, tmp_path, p12=fleet.alice_p12)], stores=['apple_profile', 'firefox'])
    assert refused.value.field == 'identities[0].apple_profile_dest'
    assert target.read_bytes() == b'not yours'
    assert not os.path.exists(os.path.join(fleet.profile, 'cert9.db'))


def test_a_profile_counts_for_its_identity_only_in_the_hosts_release_rule(fleet, tmp_path, mdm):
    """alice (Firefox and a profile) and bob (Firefox): bob's older certificate leaves Firefox although bob has no
    profile; alice's waits until her profile, too, holds her current certificate."""
    from test_reconcile import hand_import  # pylint: disable=import-error
    hand_import(fleet.profile, fleet.alice_old_p12)
    bob_old = fleet.bob
    bob_old_p12 = fleet.bob_p12
    bob = fleet.ca.ensure('bob', force=True)
    bob_p12 = str(tmp_path / 'bob-new.p12')
    fleet.ca.export(identity='bob', dest=bob_p12, password=P12_PASSWORD, iterations=1000)
    hand_import(fleet.profile, bob_old_p12)
    alice = profile_of(fleet, tmp_path, p12=fleet.alice_p12, include=False,
                       superseded_fingerprints_sha256=[fleet.alice_old['fingerprint_sha256']])
    bob_wanted = {'identity': 'bob', 'fingerprint_sha256': bob['fingerprint_sha256'], 'pkcs12_path': bob_p12,
                  'pkcs12_password': P12_PASSWORD, 'superseded_fingerprints_sha256': [bob_old['fingerprint_sha256']]}
    result = fleet.run([alice, bob_wanted], stores=['firefox', 'apple_profile'])
    firefox = store(result, 'firefox')
    holds = held(fleet.profile)
    assert bob_old['fingerprint_sha256'] not in holds and bob['fingerprint_sha256'] in holds
    assert fleet.alice_old['fingerprint_sha256'] in holds and fleet.alice['fingerprint_sha256'] in holds
    assert [d['identity'] for d in firefox['deferred']] == ['alice']

    alice['apple_profile_include_password'] = True
    done = fleet.run([alice, bob_wanted], stores=['firefox', 'apple_profile'])
    assert store(done, 'apple_profile')['imported'] == ['alice']
    assert fleet.alice_old['fingerprint_sha256'] not in held(fleet.profile)


def test_stores_of_another_system_are_skipped_on_request_and_named(fleet, tmp_path):
    with pytest.raises(InputError):
        fleet.run(stores=['firefox', 'keychain'], system='Linux')
    result = fleet.run(stores=['firefox', 'keychain'], system='Linux', skip_unavailable=True)
    assert result['skipped_stores'] == ['keychain'] and [s['store'] for s in result['stores']] == ['firefox']
    assert store(result, 'firefox')['imported'] == ['alice']


def test_an_identity_without_a_profile_destination_gets_no_profile(fleet, tmp_path, mdm):
    result = fleet.run([fleet.alice_wanted()], stores=['apple_profile'])
    assert result['stores'] == [] and result['changed'] is False
    assert reconcile.stores_of('Linux', ['apple_profile']) == (['apple_profile'], [])
