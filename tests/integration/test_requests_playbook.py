# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certfleet.pki.requests playbook: a department's file issued, renewed, handed back and revoked, the CRL
republished, the inventory written; checked from the store, the CRL (OpenSSL) and the files, not from the output.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import secrets
import stat
import subprocess

import pytest
from integration_support import AnsibleRunner, require_openssl, sqlite_rows

HEADER = ['action', 'identity', 'CN', 'email', 'OU', 'key_type', 'reason', 'serial']


def _write(path, rows) -> None:
    path.write_text('\n'.join('\t'.join(row) for row in [HEADER] + rows) + '\n', encoding='utf-8')


def _tsv(path) -> list:
    with open(path, encoding='utf-8') as handle:
        return list(csv.DictReader(handle, delimiter='\t'))


@pytest.fixture(scope='module')
def officer(tmp_path_factory, collections_path):
    base = tmp_path_factory.mktemp('requests')
    ansible = AnsibleRunner(base / 'ansible')
    passphrase = secrets.token_urlsafe(24)
    variables = {'certfleet_ca_path': str(base / 'ca'), 'certfleet_ca_passphrase': passphrase,
                 'certfleet_crl_dest': str(base / 'crl.pem'), 'certfleet_requests_dest': str(base / 'out')}
    mkca = base / 'mkca.yml'
    mkca.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'certfleet.pki.ca': {'ca_path': variables['certfleet_ca_path'], 'ca_passphrase': passphrase,
                             'subject': {'CN': 'Requests Playbook CA', 'O': 'Example Org'}, 'key_type': 'ec-p256',
                             'policy': {'allowed_domains': ['example.org']}}}]}]))
    run = ansible.run(mkca)
    assert run.returncode == 0, run.explain()

    def play(extra: dict, args=(), env=None):
        return ansible.run(pathlib.Path('certfleet.pki.requests'), extra_vars=dict(variables, **extra), args=args,
                           env=env)

    return {'base': base, 'play': play, 'db': base / 'ca' / 'state.db'}


def _certificates(officer) -> dict:
    return {row[0]: row[1:] for row in sqlite_rows(officer['db'], 'SELECT serial, identity, status, revocation_reason, '
                                                                  'is_current, pending_revocation FROM certificates')}


def test_issue_renew_hand_back_and_inventory(officer):
    base = officer['base']
    sales = base / 'sales.tsv'
    _write(sales, [['issue', 'alice', 'Alice Example', 'alice@example.org', 'Sales', 'ec-p256', '', ''],
                   ['issue', 'bob', 'Bob Example', 'bob@example.org', '', 'rsa2048', '', '']])

    checked = officer['play']({'certfleet_requests_file': str(sales)}, args=['--check'])
    assert checked.returncode == 0, checked.explain()
    assert _certificates(officer) == {} and not (base / 'out').exists()

    issued = officer['play']({'certfleet_requests_file': str(sales)})
    assert issued.returncode == 0, issued.explain()
    folders = sorted((base / 'out').iterdir())
    assert len(folders) == 1 and stat.S_IMODE(folders[0].stat().st_mode) == 0o700
    results = _tsv(folders[0] / 'results.tsv')
    assert [(r['identity'], r['result']) for r in results] == [('alice', 'issued'), ('bob', 'issued')]
    passwords = {r['identity']: r for r in _tsv(folders[0] / 'passwords.tsv')}
    openssl = require_openssl()
    for identity, row in passwords.items():
        password_file = base / ('%s.pw' % identity)
        password_file.write_text(row['password'])
        password_file.chmod(0o600)
        shown = subprocess.run([openssl, 'pkcs12', '-in', str(folders[0] / row['file']), '-passin',
                                'file:%s' % password_file, '-nokeys', '-clcerts'], capture_output=True, text=True,
                               check=True).stdout
        serial = subprocess.run([openssl, 'x509', '-noout', '-serial'], input=shown, capture_output=True, text=True,
                                check=True).stdout.strip().split('=', 1)[1].lstrip('0')
        assert serial == row['serial'].lstrip('0')
        password_file.unlink()
    for secret in (r['password'] for r in passwords.values()):
        assert secret not in issued.stdout and secret not in issued.stderr

    again = officer['play']({'certfleet_requests_file': str(sales)})
    assert again.returncode == 0, again.explain()
    assert len(list((base / 'out').iterdir())) == 1  # nothing to do, no new folder
    assert 'changed=0' in again.stdout, again.explain()

    renew = base / 'renew.tsv'
    _write(renew, [['renew', 'alice', '', '', '', '', '', ''], ['renew', 'bob', '', '', '', '', '', '']])
    renewed = officer['play']({'certfleet_requests_file': str(renew), 'certfleet_requests_delivery': 'bundle'})
    assert renewed.returncode == 0, renewed.explain()
    folder = max((base / 'out').iterdir(), key=lambda p: p.stat().st_mtime)
    assert sorted(p.name for p in folder.iterdir()) == ['renew.zip', 'results.tsv', 'revoke-old.tsv']
    old = {r['identity']: r['serial'] for r in results}
    assert {r['identity']: r['serial'] for r in _tsv(folder / 'revoke-old.tsv')} == old
    certificates = _certificates(officer)
    assert all(certificates[serial][1] == 'valid' and certificates[serial][4] == 1 for serial in old.values())
    assert not (base / 'crl.pem').exists()  # nothing revoked yet, so no CRL was published

    inventory = base / 'inventory.csv'
    revoked = officer['play']({'certfleet_requests_file': str(folder / 'revoke-old.tsv'),
                               'certfleet_requests_inventory': str(inventory)})
    assert revoked.returncode == 0, revoked.explain()
    certificates = _certificates(officer)
    assert {certificates[serial][1:3] for serial in old.values()} == {('revoked', 'superseded')}
    crl_text = subprocess.run([openssl, 'crl', '-in', str(base / 'crl.pem'), '-noout', '-text'], capture_output=True,
                              text=True, check=True).stdout.replace(':', '').upper()
    for serial in old.values():
        assert serial in crl_text
    with open(inventory, encoding='utf-8') as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == 4 and stat.S_IMODE(os.stat(inventory).st_mode) == 0o600
    assert sorted((line['identity'], line['status']) for line in lines) == [
        ('alice', 'revoked'), ('alice', 'valid'), ('bob', 'revoked'), ('bob', 'valid')]


def test_bad_file_changes_nothing(officer):
    base = officer['base']
    bad = base / 'bad.tsv'
    _write(bad, [['issue', 'carol', 'Carol', 'carol@gmail.com', '', 'ec-p256', '', '']])
    before = _certificates(officer), sorted(p.name for p in (base / 'out').iterdir()) if (base / 'out').exists() else []
    run = officer['play']({'certfleet_requests_file': str(bad)})
    assert run.returncode != 0
    assert "line 2 (carol): email: domain 'gmail.com'" in run.stdout, run.explain()
    after = _certificates(officer), sorted(p.name for p in (base / 'out').iterdir()) if (base / 'out').exists() else []
    assert after == before
    missing = officer['play']({'certfleet_requests_file': ''})
    assert missing.returncode != 0 and 'certfleet_requests_file' in missing.stdout


# The smtp_server fixture of tests/support/smtp_capture.py: aiosmtpd on 127.0.0.1, stopped after the test.
from smtp_capture import (  # noqa: E402,F401  pylint: disable=import-error,unused-import
    SMTP_PASSWORD, smtp_server, starttls_server, tls_material,
)


def test_pickup_delivery_mails_each_person_the_url_and_never_the_pin(officer, smtp_server):  # noqa: F811
    import email
    import email.policy

    base = officer['base']
    field = base / 'field.tsv'
    _write(field, [['issue', 'dora', 'Dora Example', 'dora@example.org', '', 'ec-p256', '', ''],
                   ['issue', 'emil', 'Emil Example', 'emil@example.org', '', 'ec-p256', '', '']])
    run = officer['play']({'certfleet_requests_file': str(field), 'certfleet_requests_delivery': 'pickup',
                           'certfleet_requests_pickup': {'base_url': 'https://pki.example.org'},
                           'certfleet_notice_smtp': smtp_server.settings}, args=['-vvv'])
    assert run.returncode == 0, run.explain()
    folder = max((p for p in (base / 'out').iterdir() if p.name.startswith('field-')), key=lambda p: p.stat().st_mtime)
    assert not list(folder.glob('*.p12')) and not (folder / 'passwords.tsv').exists()
    urls = {row['identity']: row for row in _tsv(folder / 'pickups.tsv')}
    pins = {row['identity']: row['pin'] for row in _tsv(folder / 'pickup-pins.tsv')}
    assert set(urls) == set(pins) == {'dora', 'emil'}
    mails = {}
    for message in smtp_server.messages:
        parsed = email.message_from_bytes(message['data'], policy=email.policy.default)
        body = '\n'.join(p.get_content() for p in parsed.walk() if p.get_content_type() == 'text/plain')
        person = next(name for name in urls if '%s@example.org' % name in message['to'])
        mails[person] = (message, body)
    assert set(mails) == {'dora', 'emil'}
    for name, (message, body) in mails.items():
        assert urls[name]['url'] in body and urls[name]['serial'] in body
        assert 'officer@example.org' in message['to']  # the officer's copy
        assert pins[name].encode() not in message['data']
    output = run.stdout + run.stderr
    for name in urls:  # neither the URL's secret nor the PIN in -vvv output
        assert urls[name]['url'].rsplit('.', 1)[1] not in output and pins[name] not in output


def test_mail_settings_from_the_awx_credential_reach_the_module_and_never_the_output(officer, starttls_server):  # noqa: F811,E501
    """The AWX SMTP credential sets CERTFLEET_SMTP_* where the job runs. The playbook hands them to the notice
    module as its smtp option (password no_log), not as a task environment, which -vvv prints with the command."""
    base = officer['base']
    field = base / 'awx.tsv'
    _write(field, [['issue', 'fred', 'Fred Example', 'fred@example.org', '', 'ec-p256', '', '']])
    env = {'CERTFLEET_SMTP_' + name.upper(): ','.join(value) if isinstance(value, list) else str(value)
           for name, value in starttls_server.settings.items()}
    run = officer['play']({'certfleet_requests_file': str(field), 'certfleet_requests_delivery': 'pickup',
                           'certfleet_requests_pickup': {'base_url': 'https://pki.example.org'},
                           'certfleet_notice_smtp': {}}, args=['-vvv'], env=env)
    assert run.returncode == 0, run.explain()
    # The server requires STARTTLS and the login: a mail there means every setting, the password too, arrived.
    assert [m['to'] for m in starttls_server.messages if 'fred@example.org' in m['to']]
    assert SMTP_PASSWORD not in run.stdout + run.stderr
