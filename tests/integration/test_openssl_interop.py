# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules write, read by the OpenSSL command line: CRL checking and both PKCS#12 encryption levels."""

from __future__ import annotations

import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from integration_support import AnsibleRunner, require_openssl

PASSWORD_MODERN = 'Modern-Interop-pw-1'
PASSWORD_LEGACY = 'Legacy-Interop-pw-2'

PLAYBOOK = '''---
- name: Certificates for OpenSSL
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: "{{ ca_dir }}"
      ca_passphrase: interop-ca-passphrase
  tasks:
    - name: The CA exists
      certfleet.pki.ca:
        subject: {CN: Interop CA, O: Example Org}
        key_type: ec-p256
        crl_url: http://pki.example.org/interop.crl

    - name: Two certificates
      certfleet.pki.client_certificate:
        identity: "{{ item.identity }}"
        subject: {CN: "{{ item.identity }}"}
        email: "{{ item.identity }}@example.org"
        key_type: "{{ item.key_type }}"
        profile: client_email
      loop:
        - {identity: current-user, key_type: rsa2048}
        - {identity: revoked-user, key_type: ec-p256}
      register: issued

    - name: Both certificates as PEM, certificate only, handed out before one is revoked
      certfleet.pki.client_certificate_export:
        serial: "{{ item.serial }}"
        format: pem
        include_chain: false
        dest: "{{ out_dir }}/{{ item.identity }}.pem"
      loop: "{{ issued.results }}"
      loop_control:
        label: "{{ item.identity }}"

    - name: One of them is revoked
      certfleet.pki.client_certificate_revoke:
        identity: revoked-user
        which: current
        reason: key_compromise
      register: revoked

    - name: The CRL is published (PEM)
      certfleet.pki.crl:
        dest: "{{ out_dir }}/crl.pem"
        format: pem

    - name: The CRL is published (DER)
      certfleet.pki.crl:
        dest: "{{ out_dir }}/crl.der"
        format: der

    - name: PKCS#12, modern and legacy
      certfleet.pki.client_certificate_export:
        identity: current-user
        dest: "{{ out_dir }}/current-{{ item.encryption }}.p12"
        password: "{{ item.password }}"
        encryption: "{{ item.encryption }}"
        friendly_name: Current User
      loop:
        - {encryption: modern, password: "{{ password_modern }}"}
        - {encryption: legacy, password: "{{ password_legacy }}"}
      loop_control:
        label: "{{ item.encryption }}"

    - name: What the test needs to know
      ansible.builtin.copy:
        content: "{{ {'issued': issued.results | map(attribute='serial') | list, 'revoked': revoked.revoked,
                      'fingerprints': issued.results | map(attribute='fingerprint_sha256') | list} | to_json }}"
        dest: "{{ out_dir }}/facts.json"
        mode: "0600"
'''


@pytest.fixture(scope='module')
def exported(tmp_path_factory, collections_path):
    base = tmp_path_factory.mktemp('interop')
    ansible = AnsibleRunner(base / 'ansible')
    out_dir = base / 'out'
    out_dir.mkdir()
    playbook = ansible.base / 'interop.yml'
    playbook.write_text(PLAYBOOK)
    run = ansible.run(playbook, extra_vars={'ca_dir': str(base / 'ca'), 'out_dir': str(out_dir),
                                            'password_modern': PASSWORD_MODERN, 'password_legacy': PASSWORD_LEGACY})
    assert run.returncode == 0, run.explain()
    facts = json.loads((out_dir / 'facts.json').read_text())
    return {'ca': base / 'ca' / 'ca.pem', 'out': out_dir, 'facts': facts}


def openssl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([require_openssl()] + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_crl_check_accepts_current_and_rejects_revoked(exported):
    out, ca = exported['out'], exported['ca']
    current = openssl('verify', '-crl_check', '-CAfile', ca, '-CRLfile', out / 'crl.pem', out / 'current-user.pem')
    assert current.returncode == 0, current.stdout + current.stderr
    assert current.stdout.strip().endswith(': OK')
    revoked = openssl('verify', '-crl_check', '-CAfile', ca, '-CRLfile', out / 'crl.pem', out / 'revoked-user.pem')
    assert revoked.returncode == 2, revoked.stdout + revoked.stderr
    assert 'certificate revoked' in revoked.stdout + revoked.stderr
    # Without the CRL the revoked certificate is fine: the CRL is what rejects it.
    plain = openssl('verify', '-CAfile', ca, out / 'revoked-user.pem')
    assert plain.returncode == 0, plain.stdout + plain.stderr


def test_crl_der_and_pem_are_the_same_signed_crl(exported):
    out, ca = exported['out'], exported['ca']
    pem = openssl('crl', '-in', out / 'crl.pem', '-CAfile', ca, '-noout', '-text')
    assert pem.returncode == 0 and 'verify OK' in pem.stdout + pem.stderr, pem.stdout + pem.stderr
    der = openssl('crl', '-inform', 'DER', '-in', out / 'crl.der', '-CAfile', ca, '-noout', '-text')
    assert der.returncode == 0 and 'verify OK' in der.stdout + der.stderr, der.stdout + der.stderr
    assert pem.stdout == der.stdout
    assert 'X509v3 CRL Number' in pem.stdout and 'X509v3 Authority Key Identifier' in pem.stdout
    revoked_serial = exported['facts']['revoked'][0]
    listed = [line.split(':', 1)[1].strip().upper().lstrip('0') for line in pem.stdout.splitlines()
              if 'Serial Number:' in line]
    assert listed == [revoked_serial.lstrip('0')]


def test_certificates_verify_as_client_certificates(exported):
    out, ca = exported['out'], exported['ca']
    result = openssl('verify', '-purpose', 'sslclient', '-CAfile', ca, out / 'current-user.pem')
    assert result.returncode == 0, result.stdout + result.stderr
    smime = openssl('verify', '-purpose', 'smimesign', '-CAfile', ca, out / 'current-user.pem')
    assert smime.returncode == 0, smime.stdout + smime.stderr


@pytest.mark.parametrize('encryption, password, algorithm, mac', [
    ('modern', PASSWORD_MODERN, 'PBES2, PBKDF2, AES-256-CBC', 'MAC: sha256'),
    ('legacy', PASSWORD_LEGACY, 'pbeWithSHA1And3-KeyTripleDES-CBC', 'MAC: sha1'),
])
def test_pkcs12_opens_with_the_password(exported, encryption, password, algorithm, mac):
    path = exported['out'] / ('current-%s.p12' % encryption)
    info = openssl('pkcs12', '-info', '-noout', '-in', path, '-passin', 'pass:%s' % password)
    assert info.returncode == 0, info.stdout + info.stderr
    text = info.stdout + info.stderr
    assert 'Shrouded Keybag: %s' % algorithm in text
    assert 'PKCS7 Encrypted data: %s' % algorithm in text
    assert mac in text
    if encryption == 'modern':
        assert 'PRF hmacWithSHA256' in text and '3-KeyTripleDES' not in text
    else:
        assert 'AES' not in text
    wrong = openssl('pkcs12', '-info', '-noout', '-in', path, '-passin', 'pass:not-%s' % password)
    assert wrong.returncode != 0
    assert 'Mac verify error' in wrong.stdout + wrong.stderr
    # The certificate inside is the issued one, with its friendly name and the CA in the chain.
    certs = openssl('pkcs12', '-in', path, '-passin', 'pass:%s' % password, '-nokeys')
    assert certs.returncode == 0, certs.stderr
    assert 'friendlyName: Current User' in certs.stdout
    found = x509.load_pem_x509_certificates(certs.stdout.encode())
    fingerprints = [c.fingerprint(hashes.SHA256()).hex().upper() for c in found]
    assert exported['facts']['fingerprints'][0] in fingerprints
    ca = x509.load_pem_x509_certificate(exported['ca'].read_bytes())
    assert ca.fingerprint(hashes.SHA256()).hex().upper() in fingerprints
    key = openssl('pkcs12', '-in', path, '-passin', 'pass:%s' % password, '-nocerts', '-nodes')
    assert key.returncode == 0 and 'PRIVATE KEY' in key.stdout
