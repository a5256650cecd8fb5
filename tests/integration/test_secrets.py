# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret in any output: the whole life cycle at -vvv, then the output, the Ansible log and the store are searched.

Secrets are the CA passphrase, the export passwords, a wrong passphrase somebody typed, and every private key: the
exported PEM key (its encrypted body and the key itself), the PKCS#12 files, the CA key and the held keys.
"""

from __future__ import annotations

import base64
import os
import pathlib
import re
import secrets
import sqlite3
import stat

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from integration_support import sqlite_rows

PLAYBOOK = '''---
- name: The whole life cycle at -vvv
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: "{{ ca_dir }}"
      ca_passphrase: "{{ ca_passphrase }}"
  tasks:
    - name: The CA exists
      certfleet.pki.ca:
        subject: {CN: Secrets Test CA, O: Example Org}
        key_type: ec-p256
        crl_url: http://pki.example.org/secrets.crl
      register: ca_result

    - name: Certificates are issued
      certfleet.pki.client_certificate:
        identity: "{{ item.identity }}"
        subject: {CN: "{{ item.identity }}"}
        email: "{{ item.identity }}@example.org"
        key_type: "{{ item.key_type }}"
      loop:
        - {identity: alice, key_type: ec-p256}
        - {identity: bob, key_type: rsa2048}
      register: issued

    - name: Bob's certificate is renewed
      certfleet.pki.client_certificate:
        identity: bob
        subject: {CN: bob}
        email: bob@example.org
        key_type: rsa2048
        force: true
      register: renewed

    - name: Alice's certificate is exported as modern PKCS#12
      certfleet.pki.client_certificate_export:
        identity: alice
        dest: "{{ out_dir }}/alice-modern.p12"
        password: "{{ password_modern }}"
        encryption: modern
        iterations: 2048
      register: export_modern

    - name: Bob's certificate is exported as legacy PKCS#12
      certfleet.pki.client_certificate_export:
        identity: bob
        dest: "{{ out_dir }}/bob-legacy.p12"
        password: "{{ password_legacy }}"
        encryption: legacy
      register: export_legacy

    - name: Alice's certificate is exported as PEM with its key
      certfleet.pki.client_certificate_export:
        identity: alice
        format: pem
        include_key: true
        dest: "{{ out_dir }}/alice-key.pem"
        password: "{{ password_pem }}"
      register: export_pem

    - name: Alice's certificate is exported as PEM without key
      certfleet.pki.client_certificate_export:
        identity: alice
        format: pem
        dest: "{{ out_dir }}/alice.pem"
      register: export_cert

    - name: The exports again (unchanged; the comparison decrypts them)
      certfleet.pki.client_certificate_export:
        identity: alice
        dest: "{{ out_dir }}/alice-modern.p12"
        password: "{{ password_modern }}"
        encryption: modern
        iterations: 2048
      register: export_again

    - name: The profile folder exists
      ansible.builtin.file:
        path: "{{ bulk_dir | dirname }}/home/.mozilla/firefox/p1"
        state: directory
        mode: "0700"

    - name: The profile is listed in profiles.ini (Firefox never opened it)
      ansible.builtin.copy:
        dest: "{{ bulk_dir | dirname }}/home/.mozilla/firefox/profiles.ini"
        mode: "0600"
        content: "[Profile0]\\nName=default\\nIsRelative=1\\nPath=p1\\nDefault=1\\n"

    - name: One reconcile call puts alice and bob into the home's stores
      certfleet.pki.endpoint_reconcile:
        homes: ["{{ bulk_dir | dirname }}/home"]
        ca_certificate: "{{ ca_dir }}/ca.pem"
        identities:
          - identity: alice
            fingerprint_sha256: "{{ issued.results[0].fingerprint_sha256 }}"
            pkcs12_path: "{{ out_dir }}/alice-modern.p12"
            pkcs12_password: "{{ password_modern }}"
          - identity: bob
            fingerprint_sha256: "{{ renewed.fingerprint_sha256 }}"
            pkcs12_path: "{{ out_dir }}/bob-legacy.p12"
            pkcs12_password: "{{ password_legacy }}"
      diff: true
      register: reconciled

    - name: A batch is exported with one-time passwords generated per file
      certfleet.pki.client_certificate_export:
        batch:
          - identity: alice
          - identity: bob
        dest_dir: "{{ bulk_dir }}/batch"
        generate_passwords: true
      register: export_batch

    - name: The second home's profile folder exists
      ansible.builtin.file:
        path: "{{ bulk_dir | dirname }}/home2/.mozilla/firefox/p1"
        state: directory
        mode: "0700"

    - name: A second home's profile is listed in profiles.ini
      ansible.builtin.copy:
        dest: "{{ bulk_dir | dirname }}/home2/.mozilla/firefox/profiles.ini"
        mode: "0600"
        content: "[Profile0]\\nName=default\\nIsRelative=1\\nPath=p1\\nDefault=1\\n"

    - name: The action plugin copies the batch's files and reads its password files on the controller
      certfleet.pki.endpoint_reconcile:
        homes: ["{{ bulk_dir | dirname }}/home2"]
        stores: [firefox]
        ca_certificate: "{{ ca_dir }}/ca.pem"
        identities:
          - identity: "{{ item.identity }}"
            fingerprint_sha256: "{{ item.fingerprint_sha256 }}"
            pkcs12_src: "{{ item.dest }}"
            pkcs12_password_src: "{{ item.password_file }}"
      loop: "{{ export_batch.exports }}"
      diff: true
      register: reconciled_from_controller

    - name: The batch again (unchanged; the comparison reads the password files)
      certfleet.pki.client_certificate_export:
        batch:
          - identity: alice
          - identity: bob
        dest_dir: "{{ bulk_dir }}/batch"
        generate_passwords: true
      register: export_batch_again

    - name: Somebody types a wrong CA passphrase
      certfleet.pki.client_certificate_export:
        identity: alice
        dest: "{{ out_dir }}/never.p12"
        password: "{{ password_modern }}"
        ca_passphrase: "{{ wrong_passphrase }}"
      ignore_errors: true
      register: wrong

    - name: Bob's superseded certificate is revoked
      certfleet.pki.client_certificate_revoke:
        identity: bob
        which: superseded
        reason: superseded
      register: revoked

    - name: The CRL is published
      certfleet.pki.crl:
        dest: "{{ out_dir }}/ca.crl.pem"
      register: crl

    - name: The store is queried
      certfleet.pki.client_certificate_info:
        include_certificate: true
      register: info

    - name: A department's request file
      ansible.builtin.copy:
        dest: "{{ bulk_dir }}/dept.tsv"
        mode: "0600"
        content: "action\\tidentity\\tCN\\temail\\tkey_type\\nissue\\tcarol\\tCarol\\tcarol@example.org\\tec-p256\\n\\
          issue\\tdave\\tDave\\tdave@example.org\\trsa2048\\n"

    - name: The request file is carried out
      certfleet.pki.client_certificate_requests:
        src: "{{ bulk_dir }}/dept.tsv"
        dest: "{{ bulk_dir }}/out"
      register: bulk

    - name: Everything registered is shown, as people do when they debug
      ansible.builtin.debug:
        var: item
      loop:
        - "{{ ca_result }}"
        - "{{ issued }}"
        - "{{ renewed }}"
        - "{{ export_modern }}"
        - "{{ export_legacy }}"
        - "{{ export_pem }}"
        - "{{ export_cert }}"
        - "{{ export_again }}"
        - "{{ export_batch }}"
        - "{{ export_batch_again }}"
        - "{{ wrong }}"
        - "{{ revoked }}"
        - "{{ crl }}"
        - "{{ info }}"
        - "{{ bulk }}"
        - "{{ reconciled }}"
        - "{{ reconciled_from_controller }}"

    - name: The life cycle did what it should (so the search below searches real output)
      ansible.builtin.assert:
        that:
          - ca_result is changed
          - issued.results | map(attribute='action') | list == ['issued', 'issued']
          - renewed.action == 'renewed'
          - export_modern is changed and export_legacy is changed and export_pem is changed
          - export_again is not changed
          - export_batch is changed and export_batch.exports | length == 2
          - export_batch_again is not changed
          - wrong is failed
          - revoked.revoked == [renewed.previous_serial]
          - crl.revoked_count == 1
          - info.count == 3
          - bulk.counts.issued == 2
          - reconciled.summary.imported == 4
          - reconciled_from_controller.results | map(attribute='summary.imported') | list == [1, 1]
'''

EXPORTS = ['alice-key.pem', 'alice-modern.p12', 'alice.pem', 'bob-legacy.p12', 'ca.crl.pem']


def _pem_body_lines(pem: bytes) -> list[str]:
    return [line for line in pem.decode('ascii').splitlines() if line and not line.startswith('-----')]


def _b64_chunks(data: bytes, size: int = 40) -> list[str]:
    """40-character pieces of the base64 of ``data``, at every 4-character (3-byte) alignment."""
    encoded = base64.b64encode(data).decode('ascii')
    return [encoded[i:i + size] for i in range(0, len(encoded) - size + 1, 4)]


def _private_key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_no_secret_in_any_output(ansible, work_dir, tmp_path):
    ca_dir = work_dir / 'ca'
    out_dir = work_dir / 'out'
    out_dir.mkdir(mode=0o700)
    token = secrets.token_hex(6)
    passwords = {
        'ca_passphrase': 'CaPass-%s-secret' % token,
        'password_modern': 'P12Modern-%s-pw' % token,
        'password_legacy': 'P12Legacy-%s-pw' % token,
        'password_pem': 'PemKey-%s-pw' % token,
        'wrong_passphrase': 'WrongGuess-%s-pw' % token,
    }
    log_path = tmp_path / 'ansible.log'
    playbook = ansible.base / 'secrets.yml'
    playbook.write_text(PLAYBOOK)
    bulk_dir = work_dir / 'bulk'
    bulk_dir.mkdir(mode=0o700)
    extra = dict(passwords, ca_dir=str(ca_dir), out_dir=str(out_dir), bulk_dir=str(bulk_dir))
    run = ansible.run(playbook, extra_vars=extra, args=['-vvv'], env={'ANSIBLE_LOG_PATH': log_path})
    assert run.returncode == 0, run.explain()
    assert re.search(r'localhost\s+:.*failed=0', run.stdout), run.explain()
    output = run.stdout + '\n' + run.stderr
    log = log_path.read_text()
    assert len(log) > 1000 and 'client_certificate_export' in log, 'the Ansible log was not written'
    assert '<localhost> EXEC' in output or 'ESTABLISH LOCAL CONNECTION' in output, 'not -vvv output'
    assert 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER' in output  # -vvv shows the module args, with secrets masked

    # What must never appear.
    forbidden = dict(passwords)
    forbidden['PRIVATE KEY marker'] = 'PRIVATE KEY'
    pem_with_key = (out_dir / 'alice-key.pem').read_bytes()
    key_start = pem_with_key.index(b'-----BEGIN ENCRYPTED PRIVATE KEY-----')
    encrypted_key_pem = pem_with_key[key_start:]
    for number, line in enumerate(_pem_body_lines(encrypted_key_pem)):
        forbidden['encrypted PEM key line %d' % number] = line
    alice_key = serialization.load_pem_private_key(encrypted_key_pem, passwords['password_pem'].encode())
    for number, line in enumerate(_pem_body_lines(_private_key_pem(alice_key))):
        forbidden['alice key line %d' % number] = line
    for name in ('alice-modern.p12', 'bob-legacy.p12'):
        data = (out_dir / name).read_bytes()
        for number, chunk in enumerate(_b64_chunks(data)):
            forbidden['%s base64 chunk %d' % (name, number)] = chunk
        forbidden['%s hex' % name] = data[16:48].hex()
    bob = pkcs12.load_pkcs12((out_dir / 'bob-legacy.p12').read_bytes(), passwords['password_legacy'].encode())
    for number, line in enumerate(_pem_body_lines(_private_key_pem(bob.key))):
        forbidden['bob key line %d' % number] = line
    # The bulk run's generated passwords, its PKCS#12 files and their keys.
    bulk_out = list((bulk_dir / 'out').iterdir())
    assert len(bulk_out) == 1 and bulk_out[0].name.startswith('dept-'), bulk_out
    bulk_passwords = (bulk_out[0] / 'passwords.tsv').read_text().splitlines()[1:]
    assert len(bulk_passwords) == 2
    for entry in bulk_passwords:
        identity, _serial, file_name, password = entry.split('\t')
        forbidden['bulk password of %s' % identity] = password
        data = (bulk_out[0] / file_name).read_bytes()
        for number, chunk in enumerate(_b64_chunks(data)):
            forbidden['bulk %s base64 chunk %d' % (file_name, number)] = chunk
        parsed = pkcs12.load_pkcs12(data, password.encode())
        for number, line in enumerate(_pem_body_lines(_private_key_pem(parsed.key))):
            forbidden['bulk %s key line %d' % (identity, number)] = line
        assert stat.S_IMODE(os.stat(bulk_out[0] / file_name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(bulk_out[0]).st_mode) == 0o700
    # The batch export's generated passwords (in files next to the PKCS#12 files), its files and their keys.
    batch_dir = bulk_dir / 'batch'
    assert stat.S_IMODE(os.stat(batch_dir).st_mode) == 0o700
    batch_files = sorted(path.name for path in batch_dir.iterdir())
    assert batch_files == ['alice.p12', 'alice.p12.password', 'bob.p12', 'bob.p12.password']
    for identity in ('alice', 'bob'):
        password = (batch_dir / ('%s.p12.password' % identity)).read_text().strip()
        forbidden['batch password of %s' % identity] = password
        data = (batch_dir / ('%s.p12' % identity)).read_bytes()
        for number, chunk in enumerate(_b64_chunks(data)):
            forbidden['batch %s.p12 base64 chunk %d' % (identity, number)] = chunk
        parsed = pkcs12.load_pkcs12(data, password.encode())
        for number, line in enumerate(_pem_body_lines(_private_key_pem(parsed.key))):
            forbidden['batch %s key line %d' % (identity, number)] = line
        for name in ('%s.p12' % identity, '%s.p12.password' % identity):
            assert stat.S_IMODE(os.stat(batch_dir / name).st_mode) == 0o600, name
    ca_key_pem = (ca_dir / 'ca.key').read_bytes()
    for number, line in enumerate(_pem_body_lines(ca_key_pem)):
        forbidden['CA key file line %d' % number] = line
    ca_key = serialization.load_pem_private_key(ca_key_pem, passwords['ca_passphrase'].encode())
    for number, line in enumerate(_pem_body_lines(_private_key_pem(ca_key))):
        forbidden['CA key line %d' % number] = line
    # A PKCS#8 EC key carries its public key too, and a 64-character line of it can coincide with a line of the
    # certificate's base64 (the same public key bytes at the same alignment): such a line is public, not a leak.
    public = {line for (pem,) in sqlite_rows(ca_dir / 'state.db', 'SELECT pem FROM certificates')
              for line in _pem_body_lines(pem.encode('ascii'))}
    public.update(_pem_body_lines((ca_dir / 'ca.pem').read_bytes()))
    forbidden = {name: value for name, value in forbidden.items() if 'key line' not in name or value not in public}
    assert len(forbidden) > 100

    audit = '\n'.join(repr(row) for row in sqlite_rows(ca_dir / 'state.db', 'SELECT * FROM audit'))
    assert 'export' in audit and 'revoke' in audit and 'crl_publish' in audit, audit
    others = '\n'.join(repr(row) for table in ('meta', 'certificates')
                       for row in sqlite_rows(ca_dir / 'state.db', 'SELECT * FROM %s' % table))
    # The held keys are stored wrapped; the raw database must not hold any password or clear key either.
    raw_store = b''.join(path.read_bytes() for path in ca_dir.glob('state.db*'))

    places = {'ansible-playbook output': output, 'ANSIBLE_LOG_PATH file': log, 'audit table': audit,
              'meta and certificates tables': others}
    leaks = []
    for place, text in places.items():
        for name, value in forbidden.items():
            if value in text:
                leaks.append('%s in %s' % (name, place))
    for name, value in forbidden.items():
        if name in passwords or 'key line' in name or 'bulk password' in name or 'batch password' in name:
            if value.encode('ascii') in raw_store:
                leaks.append('%s in the raw state.db' % name)
    assert not leaks, 'secrets leaked: %s' % ', '.join(leaks[:20])

    # Sanity of the search itself: things that should be there are found (the search is not blind).
    certificate_line = _pem_body_lines((out_dir / 'alice.pem').read_bytes())[1]
    assert certificate_line in output and certificate_line in log

    # Files: exports 0600, CA folder 0700, secrets 0600, and no temporary file left next to any of them.
    assert stat.S_IMODE(os.stat(ca_dir).st_mode) == 0o700
    for name in ('ca.key', 'state.db'):
        assert stat.S_IMODE(os.stat(ca_dir / name).st_mode) == 0o600, name
    for name in EXPORTS[:-1]:
        assert stat.S_IMODE(os.stat(out_dir / name).st_mode) == 0o600, name
    assert sorted(path.name for path in out_dir.iterdir()) == EXPORTS
    allowed_in_ca = {'ca.pem', 'ca.key', 'state.db', 'state.db-wal', 'state.db-shm', 'crl.pem', 'crl.der', '.lock'}
    in_ca = {path.name for path in ca_dir.iterdir()}
    assert in_ca <= allowed_in_ca, in_ca - allowed_in_ca
    assert {'ca.pem', 'ca.key', 'state.db', 'crl.pem', 'crl.der'} <= in_ca
    leftovers = [path for path in pathlib.Path(work_dir).rglob('*')
                 if path.name.endswith(('.tmp', '.partial')) or '.new' in path.name]
    assert not leftovers, leftovers


def test_secret_search_finds_a_planted_leak(tmp_path):
    """The helpers above find a PKCS#12 that was printed, whatever the line wrapping (guards the search itself)."""
    data = secrets.token_bytes(2000)
    wrapped = base64.encodebytes(data).decode('ascii')  # 76-character lines, as a careless debug print would do
    chunks = _b64_chunks(data)
    assert any(chunk in wrapped for chunk in chunks)
    assert not any(chunk in base64.b64encode(secrets.token_bytes(2000)).decode() for chunk in chunks)
    database = tmp_path / 'x.db'
    connection = sqlite3.connect(database)
    connection.execute('CREATE TABLE audit (detail TEXT)')
    connection.execute("INSERT INTO audit VALUES ('found-me')")
    connection.commit()
    connection.close()
    assert sqlite_rows(database, 'SELECT detail FROM audit') == [('found-me',)]
