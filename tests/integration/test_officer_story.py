# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registration officer's story in one run, with the CA whole in PostgreSQL (issue 13): a bulk request file
with pickup delivery, each person's retrieval URL mailed, the portal (gunicorn, reading the same PostgreSQL store)
walked in headless Chromium, the PKCS#12 authenticating to nginx with curl, the officer's "download complete"
notice, a renewal picked up and confirmed (the old serial revoked, "replacement complete", the CRL refusing it), a
revoke line ("revocation complete"), and the report with its pickup column and expiry notices. Every mail is read
from a real SMTP server on 127.0.0.1 and checked for the DN and serial and for the absence of PIN and passwords.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import pathlib
import re
import secrets
import subprocess
import sys

import pytest
from browsers_support import MtlsServer, curl_visit, normalize_serial
from integration_support import AnsibleRunner
from portal_support import Browser, PortalServer, skip_without_parts
from postgresql_server import PASSWORD, PASSWORD_ROLE, PostgreSQLServer, why_unavailable
from test_pickup_portal import _import_library

# aiosmtpd on 127.0.0.1 (tests/support/smtp_capture.py), stopped after the test.
from smtp_capture import smtp_server  # noqa: F401  pylint: disable=import-error,unused-import

pytestmark = pytest.mark.skipif(why_unavailable() is not None, reason=why_unavailable() or '')

HEADER = ['action', 'identity', 'CN', 'email', 'key_type', 'reason']


def _write(path: pathlib.Path, rows: list) -> None:
    path.write_text('\n'.join('\t'.join(row) for row in [HEADER] + rows) + '\n', encoding='utf-8')


def _tsv(path: pathlib.Path) -> dict:
    with open(path, encoding='utf-8') as handle:
        return {row['identity']: row for row in csv.DictReader(handle, delimiter='\t')}


def _newest(folder: pathlib.Path, prefix: str) -> pathlib.Path:
    return max((p for p in folder.iterdir() if p.name.startswith(prefix)), key=lambda p: p.stat().st_mtime)


class Mailbox:
    """The SMTP server's messages, read in order: (kind from the subject, recipients, subject, text)."""

    def __init__(self, server):
        self.server = server
        self.seen = 0

    def new(self) -> list:
        messages = self.server.messages[self.seen:]
        self.seen += len(messages)
        found = []
        for message in messages:
            parsed = email.message_from_bytes(message['data'], policy=email.policy.default)
            text = '\n'.join(p.get_content() for p in parsed.walk() if p.get_content_type() == 'text/plain')
            found.append({'to': message['to'], 'subject': str(parsed['Subject']), 'text': text,
                          'raw': message['data']})
        return found


def _start_services(tmp_path, collections, url, passphrase, smtp):
    etc = tmp_path / 'etc'
    etc.mkdir(mode=0o700)
    files = {'secret_key_file': etc / 'secret.key', 'ca_passphrase_file': etc / 'ca.pass'}
    files['secret_key_file'].write_text(os.urandom(32).hex())
    files['ca_passphrase_file'].write_text(passphrase)
    for path in files.values():
        os.chmod(path, 0o600)
    portal = PortalServer(tmp_path / 'portal', collections, dict(
        {name: str(path) for name, path in files.items()}, ca_store=url, notices={'smtp': smtp}))
    portal.start()
    return portal


def test_the_officers_story_on_postgresql(tmp_path, collections_path, smtp_server):  # noqa: F811
    skip_without_parts()
    database = PostgreSQLServer().start()
    services = []
    try:
        _story(tmp_path, collections_path, database, smtp_server, services)
    finally:
        for service in reversed(services):
            service.stop() if hasattr(service, 'stop') else service.quit()
        database.stop()


def _story(tmp_path, collections, database, smtp, services):  # pylint: disable=too-many-locals,too-many-statements
    dbname = database.create_database()
    url = database.url(dbname, PASSWORD_ROLE, PASSWORD)
    passphrase = secrets.token_urlsafe(24)
    ansible = AnsibleRunner(tmp_path / 'ansible')
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    common = {'certfleet_ca_store': url, 'certfleet_ca_passphrase': passphrase,
              'certfleet_crl_dest': str(tmp_path / 'crl.pem'), 'certfleet_requests_dest': str(tmp_path / 'out'),
              'certfleet_notice_smtp': smtp.settings}
    outputs = []

    def play(name, extra):
        run = ansible.run(pathlib.Path('certfleet.pki.%s' % name), extra_vars=dict(common, **extra),
                          inventory=inventory)
        assert run.returncode == 0, run.explain()
        assert PASSWORD not in run.stdout + run.stderr and passphrase not in run.stdout + run.stderr
        outputs.append(run.stdout + run.stderr)
        return run

    mkca = tmp_path / 'mkca.yml'
    mkca.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{'certfleet.pki.ca': {
        'ca_store': url, 'ca_passphrase': passphrase, 'subject': {'CN': 'Story Staff CA', 'O': 'Example Org'},
        'key_type': 'ec-p256'}}]}]))
    made = ansible.run(mkca, inventory=inventory)
    assert made.returncode == 0, made.explain()

    ManagedCA, _ensure_ca = _import_library(collections)
    ca_pem, crl = tmp_path / 'ca.pem', tmp_path / 'crl.pem'
    with ManagedCA(None, passphrase, store_url=url) as ca:
        ca_pem.write_text(ca.authority.chain_pem())
        ca.publish_crl(dest=str(crl))

    portal = _start_services(tmp_path, collections, url, passphrase, smtp.settings)
    services.append(portal)
    nginx = MtlsServer(tmp_path / 'nginx', ca_pem, crl)
    nginx.start()
    services.append(nginx)
    browser = Browser(tmp_path / 'chromium', None)
    services.append(browser)
    mail = Mailbox(smtp)

    # 1. The department's file: two people, delivered by pickup; each gets the URL by mail, the officer a copy.
    staff = tmp_path / 'staff.tsv'
    _write(staff, [['issue', 'alice', 'Alice Example', 'alice@example.org', 'ec-p256', ''],
                   ['issue', 'bob', 'Bob Example', 'bob@example.org', 'ec-p256', '']])
    play('requests', {'certfleet_requests_file': str(staff), 'certfleet_requests_delivery': 'pickup',
                      'certfleet_requests_pickup': {'base_url': portal.base_url}})
    folder = _newest(tmp_path / 'out', 'staff-')
    urls, pins = _tsv(folder / 'pickups.tsv'), {k: v['pin'] for k, v in _tsv(folder / 'pickup-pins.tsv').items()}
    ready = mail.new()
    assert sorted(tuple(sorted(m['to'])) for m in ready) == [('alice@example.org', 'officer@example.org'),
                                                             ('bob@example.org', 'officer@example.org')]
    for message in ready:
        person = next(to for to in message['to'] if to != 'officer@example.org').split('@')[0]
        assert urls[person]['url'] in message['text'] and 'officer@example.org' in message['to']
        assert pins[person].encode() not in message['raw']

    # 2. Alice picks up in the browser; the file authenticates to nginx; the officer hears of it.
    alice_first = urls['alice']['serial']
    first_p12 = _pick_up(browser, urls['alice']['url'], pins['alice'], tmp_path / 'alice-first.p12')
    status, body = curl_visit(first_p12, pins['alice'], nginx.pki['ca'], nginx.url, tmp_path)
    assert status == 200 and normalize_serial(body.split('serial=')[1].split('<')[0]) == normalize_serial(
        alice_first)
    (complete,) = mail.new()
    assert complete['to'] == ['officer@example.org'] and 'Certificate picked up' in complete['subject']
    assert alice_first in complete['text'] and 'CN=Alice Example' in complete['text']
    assert pins['alice'].encode() not in complete['raw']

    # 3. Alice renews: the new certificate comes by pickup, and the old one stays valid until she confirms.
    renew = tmp_path / 'renew.tsv'
    _write(renew, [['renew', 'alice', '', '', '', '']])
    play('requests', {'certfleet_requests_file': str(renew), 'certfleet_requests_delivery': 'pickup',
                      'certfleet_requests_pickup': {'base_url': portal.base_url}})
    folder = _newest(tmp_path / 'out', 'renew-')
    renewal, renewal_pin = _tsv(folder / 'pickups.tsv')['alice'], _tsv(folder / 'pickup-pins.tsv')['alice']['pin']
    assert [sorted(m['to']) for m in mail.new()] == [['alice@example.org', 'officer@example.org']]
    new_p12 = _pick_up(browser, renewal['url'], renewal_pin, tmp_path / 'alice-new.p12')
    assert alice_first in browser.driver.page_source  # the page names the certificate it replaces
    (handback,) = mail.new()
    assert 'Certificate picked up' in handback['subject'] and alice_first in handback['text']  # the revocation request
    with database.admin(dbname) as conn:
        assert conn.execute('SELECT status FROM certfleet.certificates WHERE serial = %s',
                            (alice_first,)).fetchone()[0] == 'valid'
    browser.click('confirm')
    assert browser.heading() == 'Thank you'
    (replaced,) = mail.new()
    assert 'Replacement complete' in replaced['subject']
    assert renewal['serial'] in replaced['text'] and alice_first in replaced['text']

    # 4. Bob leaves before picking up: a revoke line; the CRL lists him and the officer is told.
    leave = tmp_path / 'leave.tsv'
    _write(leave, [['revoke', 'bob', '', '', '', 'cessationOfOperation']])
    play('requests', {'certfleet_requests_file': str(leave)})
    (revoked,) = mail.new()
    assert 'Certificate revoked' in revoked['subject'] and urls['bob']['serial'] in revoked['text']
    assert 'CN=Bob Example' in revoked['text']
    crl_text = subprocess.run(['openssl', 'crl', '-in', str(crl), '-noout', '-text'], capture_output=True, text=True,
                              check=True).stdout
    listed = {normalize_serial(s) for s in re.findall(r'Serial Number: ([0-9A-Fa-f]+)', crl_text)}
    assert listed == {normalize_serial(alice_first), normalize_serial(urls['bob']['serial'])}
    nginx.reload()
    assert curl_visit(first_p12, pins['alice'], nginx.pki['ca'], nginx.url, tmp_path)[0] == 400
    assert curl_visit(new_p12, renewal_pin, nginx.pki['ca'], nginx.url, tmp_path)[0] == 200

    # 5. The report: where each pickup stands, and one expiry notice per valid certificate (a year ahead).
    reports = tmp_path / 'reports'
    play('report', {'certfleet_report_dir': str(reports), 'certfleet_report_expiring_within': 400})
    with open(reports / 'certificates.csv', encoding='utf-8') as handle:
        rows = {row['serial']: row for row in csv.DictReader(handle)}
    assert rows[alice_first]['status'] == 'revoked' and rows[alice_first]['pickup'].startswith('picked up ')
    assert rows[renewal['serial']]['pickup'].endswith(', replacement confirmed')
    assert rows[urls['bob']['serial']]['status'] == 'revoked'
    assert rows[urls['bob']['serial']]['pickup'].startswith('awaiting pickup')
    page = ' '.join((reports / 'certificates.html').read_text().split())
    assert '<b>1</b>awaiting pickup' in page
    (expiry,) = mail.new()  # alice's new certificate is the only valid one
    assert 'Certificate expires in' in expiry['subject'] and renewal['serial'] in expiry['text']

    # Nothing secret anywhere: no PIN, no CA passphrase, no store password in the output, the mails or the logs.
    secrets_used = [pins['alice'], pins['bob'], renewal_pin, passphrase, PASSWORD]
    everything = '\n'.join(outputs) + portal.log_text()
    raw_mails = b''.join(message['data'] for message in smtp.messages)
    for secret in secrets_used:
        assert secret not in everything and secret.encode() not in raw_mails
    assert b'PRIVATE KEY' not in raw_mails and b'application/x-pkcs12' not in raw_mails
    assert len(smtp.messages) == 8  # 2 ready, picked up, ready, picked up, replaced, revoked, expiring


def _pick_up(browser, url: str, pin: str, keep: pathlib.Path) -> pathlib.Path:
    """The person's walk: the link, the PIN, the download, done; the file is moved to ``keep``."""
    browser.open(url)
    assert browser.heading() == 'Enter your PIN'
    browser.enter_pin(pin)
    assert browser.heading() == 'Check and download'
    browser.download()
    downloaded = browser.wait_for_download(keep.name.split('-')[0] + '.p12')  # the identity's name
    browser.click('done')
    assert browser.heading() == 'Download complete'
    return downloaded.rename(keep)
