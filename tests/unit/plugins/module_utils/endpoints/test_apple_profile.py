# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""endpoints.apple_profile: the .mobileconfig written, read back with plistlib, and opened with OpenSSL."""

from __future__ import annotations

import os
import plistlib
import stat
import subprocess
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import apple_profile as ap

PASSWORD = 'profile pass \u00e9'
FAST = 1000


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _sha256(certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex().upper()


@pytest.fixture
def material(ca, tmp_path):
    ca.ensure('alice@example.org', subject={'CN': 'Alice Example'})
    out = tmp_path / 'out'
    out.mkdir()
    modern = out / 'alice-modern.p12'
    legacy = out / 'alice-legacy.p12'
    ca.export(identity='alice@example.org', dest=str(modern), password=PASSWORD, iterations=FAST)
    ca.export(identity='alice@example.org', dest=str(legacy), password=PASSWORD, encryption='legacy',
              iterations=FAST)
    certificate = pkcs12.load_pkcs12(modern.read_bytes(), PASSWORD.encode()).cert.certificate
    with open(ca.file('ca.pem'), 'rb') as handle:
        ca_certificate = x509.load_pem_x509_certificate(handle.read())
    return {'harness': ca, 'modern': str(modern), 'legacy': str(legacy), 'certificate': certificate,
            'ca': ca_certificate, 'ca_path': ca.file('ca.pem'), 'out': out, 'dest': str(out / 'alice.mobileconfig')}


def write(material, **params):
    params.setdefault('dest', material['dest'])
    params.setdefault('identity', 'alice@example.org')
    params.setdefault('pkcs12_path', material['modern'])
    params.setdefault('pkcs12_password', PASSWORD)
    params.setdefault('ca_certificate', material['ca_path'])
    return ap.ensure_apple_profile(**params)


def read_profile(path) -> dict:
    with open(path, 'rb') as handle:
        return plistlib.load(handle)


def test_profile_content_read_back(material):
    result = write(material, organization='Example Org', display_name='Example VPN certificate',
                   description='For the VPN', identifier_prefix='org.example.pki')
    assert result['changed'] is True and result['reasons'] == ['%s does not exist' % material['dest']]
    assert _mode(material['dest']) == 0o600
    with open(material['dest'], 'rb') as handle:
        raw = handle.read()
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC')
    profile = read_profile(material['dest'])
    assert profile['PayloadType'] == 'Configuration' and profile['PayloadVersion'] == 1
    assert profile['PayloadIdentifier'] == result['profile_identifier']
    assert result['profile_identifier'].startswith('org.example.pki.alice-example.org-')  # '@' replaced, hash added
    assert profile['PayloadDisplayName'] == 'Example VPN certificate'
    assert profile['PayloadOrganization'] == 'Example Org' and profile['PayloadDescription'] == 'For the VPN'
    assert profile['PayloadRemovalDisallowed'] is False
    assert [p['PayloadType'] for p in profile['PayloadContent']] == [ap.PKCS12_TYPE, ap.ROOT_TYPE]
    identity, root = profile['PayloadContent']
    for payload in (profile, identity, root):
        assert uuid.UUID(payload['PayloadUUID']).version == 5
        assert payload['PayloadUUID'] == payload['PayloadUUID'].upper()
    assert len({profile['PayloadUUID'], identity['PayloadUUID'], root['PayloadUUID']}) == 3
    assert result['payload_uuids'] == {ap.PKCS12_TYPE: identity['PayloadUUID'], ap.ROOT_TYPE: root['PayloadUUID']}
    assert identity['PayloadIdentifier'] == profile['PayloadIdentifier'] + '.pkcs12'
    assert identity['PayloadDisplayName'] == 'Alice Example'
    assert identity['PayloadCertificateFileName'] == 'alice@example.org.p12'
    assert 'Password' not in identity and result['includes_password'] is False
    # The embedded PKCS#12 holds the certificate and its key, re-encrypted the legacy way with the same password.
    embedded = pkcs12.load_pkcs12(identity['PayloadContent'], PASSWORD.encode())
    assert embedded.cert.certificate == material['certificate']
    assert embedded.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo) == \
        material['certificate'].public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pkcs12_lib.describe(identity['PayloadContent'])['encryption'] == 'legacy'
    assert result['pkcs12_encryption'] == 'legacy'
    assert x509.load_der_x509_certificate(root['PayloadContent']) == material['ca']
    assert root['PayloadCertificateFileName'] == 'ca.cer'
    assert result['fingerprint_sha256'] == _sha256(material['certificate'])
    assert result['ca_fingerprint_sha256'] == _sha256(material['ca'])
    assert PASSWORD not in repr(result)
    assert sorted(os.listdir(material['out'])) == ['alice-legacy.p12', 'alice-modern.p12', 'alice.mobileconfig']


def test_openssl_opens_the_embedded_pkcs12(material, tmp_path):
    write(material)
    identity = read_profile(material['dest'])['PayloadContent'][0]
    extracted = tmp_path / 'embedded.p12'
    extracted.write_bytes(identity['PayloadContent'])
    opened = subprocess.run(['openssl', 'pkcs12', '-in', str(extracted), '-passin', 'pass:' + PASSWORD, '-info',
                             '-nokeys', '-clcerts'], capture_output=True, text=True, check=False)
    assert opened.returncode == 0, opened.stderr
    report = opened.stdout + opened.stderr
    assert 'pbeWithSHA1And3-KeyTripleDES-CBC' in report and 'MAC: sha1' in report
    assert 'CN = Alice Example' in report or 'CN=Alice Example' in report
    refused = subprocess.run(['openssl', 'pkcs12', '-in', str(extracted), '-passin', 'pass:wrong', '-noout'],
                             capture_output=True, text=True, check=False)
    assert refused.returncode != 0


def test_rerun_is_idempotent_although_bytes_would_differ(material):
    first = write(material)
    before = open(material['dest'], 'rb').read()
    again = write(material)
    assert again['changed'] is False and again['reasons'] == []
    assert open(material['dest'], 'rb').read() == before
    # Same certificate from a differently encrypted file: same content, nothing rewritten.
    from_legacy = write(material, pkcs12_path=material['legacy'])
    assert from_legacy['changed'] is False
    assert again['profile_uuid'] == first['profile_uuid'] and again['payload_uuids'] == first['payload_uuids']


def test_check_mode_predicts_without_writing(material):
    predicted = write(material, check_mode=True)
    assert predicted['changed'] is True and not os.path.exists(material['dest'])
    write(material)
    assert write(material, check_mode=True)['changed'] is False
    changed = write(material, organization='Another Org', check_mode=True)
    assert changed['changed'] is True and changed['reasons'] == ['PayloadOrganization differs']
    assert 'PayloadOrganization' not in read_profile(material['dest'])


def test_reissued_profile_keeps_identifier_and_uuids(material, tmp_path):
    first = write(material)
    material['harness'].ensure('alice@example.org', subject={'CN': 'Alice Example'}, force=True)
    renewed = tmp_path / 'renewed.p12'
    material['harness'].export(identity='alice@example.org', dest=str(renewed), password=PASSWORD, iterations=FAST)
    second = write(material, pkcs12_path=str(renewed))
    assert second['changed'] is True
    assert second['fingerprint_sha256'] != first['fingerprint_sha256']
    assert any('embedded certificate is %s' % first['fingerprint_sha256'] in r for r in second['reasons'])
    assert (second['profile_identifier'], second['profile_uuid'], second['payload_uuids']) == (
        first['profile_identifier'], first['profile_uuid'], first['payload_uuids'])
    embedded = read_profile(material['dest'])['PayloadContent'][0]['PayloadContent']
    assert _sha256(pkcs12.load_pkcs12(embedded, PASSWORD.encode()).cert.certificate) == second['fingerprint_sha256']


def test_uuids_are_stable_per_identity_and_distinct_between_identities():
    assert ap.payload_uuid('certfleet.pki.alice', 'alice', ap.PKCS12_TYPE) == \
        ap.payload_uuid('certfleet.pki.alice', 'alice', ap.PKCS12_TYPE)
    values = {ap.payload_uuid(ident, name, kind)
              for ident, name in [('certfleet.pki.alice', 'alice'), ('certfleet.pki.bob', 'bob'),
                                  ('org.example.alice', 'alice')]
              for kind in ('Configuration', ap.PKCS12_TYPE, ap.ROOT_TYPE)}
    assert len(values) == 9
    # Fixed namespace: these values must never change, or devices keep old and new profiles side by side.
    assert ap.payload_uuid('certfleet.pki.alice', 'alice', 'Configuration') == str(
        uuid.uuid5(uuid.UUID('6f0c2d3e-8a41-5b7c-9d2e-4c1f0a6b8e37'), 'certfleet.pki.alice\nalice\nConfiguration')
    ).upper()
    assert ap.profile_identifier('alice') == 'certfleet.pki.alice'
    assert ap.profile_identifier('a@b') != ap.profile_identifier('a-b')  # no collision after replacing characters


def test_password_in_profile_only_when_asked(material):
    with_password = write(material, include_password=True)
    assert with_password['changed'] is True and with_password['includes_password'] is True
    identity = read_profile(material['dest'])['PayloadContent'][0]
    assert identity['Password'] == PASSWORD
    assert PASSWORD not in repr(with_password)  # the result and its diff never carry it
    assert write(material, include_password=True)['changed'] is False
    without = write(material)
    assert without['changed'] is True and without['reasons'] == ['the embedded password differs']
    assert 'Password' not in read_profile(material['dest'])['PayloadContent'][0]


def test_new_password_rewrites(material):
    write(material)
    other = material['out'] / 'alice-other-password.p12'
    material['harness'].export(identity='alice@example.org', dest=str(other), password='another password',
                               iterations=FAST)
    result = write(material, pkcs12_path=str(other), pkcs12_password='another password')
    assert result['reasons'] == ['the embedded PKCS#12 does not open with pkcs12_password']
    embedded = read_profile(material['dest'])['PayloadContent'][0]['PayloadContent']
    assert pkcs12_lib.load(embedded, 'another password') is not None


def test_keep_embeds_the_file_and_warns_about_aes(material):
    kept = write(material, pkcs12_encryption='keep')
    assert kept['pkcs12_encryption'] == 'modern' and 'pkcs12_encryption: legacy' in kept['warnings'][0]
    with open(material['modern'], 'rb') as handle:
        assert read_profile(material['dest'])['PayloadContent'][0]['PayloadContent'] == handle.read()
    back = write(material)
    assert back['changed'] is True and any('encryption' in r for r in back['reasons'])
    assert 'warnings' not in write(material, pkcs12_path=material['legacy'], pkcs12_encryption='keep')


def test_without_ca_and_mode_repair(material):
    result = write(material, ca_certificate=None)
    assert result['ca_fingerprint_sha256'] is None
    assert [p['PayloadType'] for p in read_profile(material['dest'])['PayloadContent']] == [ap.PKCS12_TYPE]
    with_ca = write(material)
    assert with_ca['changed'] is True and with_ca['reasons'] == [
        'PayloadDescription differs', 'the payloads differ (1 instead of 2)']
    os.chmod(material['dest'], 0o644)
    before = open(material['dest'], 'rb').read()
    repaired = write(material)
    assert repaired['changed'] is True and repaired['reasons'] == ['mode is 0644, wanted 0600']
    assert _mode(material['dest']) == 0o600 and open(material['dest'], 'rb').read() == before


def test_unreadable_existing_file_is_replaced(material):
    with open(material['dest'], 'wb') as handle:
        handle.write(b'not a property list')
    result = write(material)
    assert result['reasons'] == ['the existing file is not a readable configuration profile']
    assert read_profile(material['dest'])['PayloadType'] == 'Configuration'


@pytest.mark.parametrize('params, field', [
    ({'dest': '/nonexistent/folder/alice.mobileconfig'}, 'dest'),
    ({'dest': 'OUT'}, 'dest'),
    ({'identity': ' '}, 'identity'),
    ({'pkcs12_path': '/nonexistent/alice.p12'}, 'pkcs12_path'),
    ({'pkcs12_path': 'CORRUPT'}, 'pkcs12_path'),
    ({'pkcs12_password': 'wrong'}, 'pkcs12_password'),
    ({'pkcs12_password': ''}, 'pkcs12_password'),
    ({'ca_certificate': 'OTHER_CA'}, 'ca_certificate'),
    ({'ca_certificate': '/nonexistent/ca.pem'}, 'ca_certificate'),
    ({'pkcs12_encryption': 'modern'}, 'pkcs12_encryption'),
    ({'identifier': 'not an identifier!'}, 'identifier'),
    ({'identifier_prefix': '.bad'}, 'identifier_prefix'),
])
def test_bad_input_names_the_field_and_writes_nothing(material, make_ca, params, field):
    corrupt = material['out'] / 'corrupt.p12'
    corrupt.write_bytes(b'0\x82 not a PKCS#12')
    other = make_ca('other', subject={'CN': 'Other CA'})
    replace = {'CORRUPT': str(corrupt), 'OTHER_CA': other.file('ca.pem'), 'OUT': str(material['out'])}
    params = {k: replace.get(v, v) for k, v in params.items()}
    listing = sorted(os.listdir(material['out']))
    with pytest.raises(InputError) as error:
        write(material, **params)
    assert error.value.field == field, error.value.message
    assert sorted(os.listdir(material['out'])) == listing
