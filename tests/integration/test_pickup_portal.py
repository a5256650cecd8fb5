# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pickup portal with real parts (issue 13): a CA in a temp folder, pickups made by ca.pickup, the portal under
gunicorn on 127.0.0.1, headless Chromium (Selenium + Debian's chromedriver) walking the pages, the downloaded
PKCS#12 authenticating to nginx with curl, and the CRL after a confirmed renewal refusing the old certificate.

With CERTFLEET_SCREENSHOTS_DIR set, every page is saved at desktop and phone widths (docs/screenshots/ holds a run).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest
from browsers_support import MtlsServer, curl_visit, normalize_serial
from integration_support import ensure_collection_link
from portal_support import Browser, PortalServer, post, skip_without_parts

PASSPHRASE = 'portal test passphrase'


def _import_library(collections: pathlib.Path):
    """The collection's library, from the same link gunicorn imports it from."""
    try:
        from ansible_collections.certfleet.pki.plugins.module_utils.ca import service  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(collections))
        for name in [n for n in sys.modules if n == 'ansible_collections' or n.startswith('ansible_collections.')]:
            del sys.modules[name]
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
    return ManagedCA, ensure_ca


class Officer:
    """The registration officer's side, through the collection's library (what the modules call)."""

    def __init__(self, folder: pathlib.Path, collections: pathlib.Path):
        self.ManagedCA, ensure_ca = _import_library(collections)
        self.path = str(folder / 'ca')
        ensure_ca(ca_path=self.path, ca_passphrase=PASSPHRASE, subject={'CN': 'Example Staff CA', 'O': 'Example Org'},
                  key_type='ec-p256', valid_days=3650)
        self.ca_pem = folder / 'ca.pem'
        self.crl = folder / 'crl.pem'
        with self.open() as ca:
            from cryptography.hazmat.primitives import serialization
            self.ca_pem.write_bytes(ca.authority.certificate.public_bytes(serialization.Encoding.PEM))
        self.publish_crl()

    def open(self, clock=None):
        return self.ManagedCA(self.path, PASSPHRASE, **({'clock': clock} if clock else {}))

    def issue(self, identity: str, name: str, force: bool = False) -> dict:
        with self.open() as ca:
            wanted = ca.build_wanted(identity=identity, subject={'CN': name, 'O': 'Example Org'}, key_type='ec-p256',
                                     force=force)
            return ca.ensure_certificate(wanted)

    def pickup(self, identity: str, base_url: str, **options) -> tuple:
        with self.open() as ca:
            result = ca.create_pickup(identity=identity, base_url=base_url, **options)
        return result['url'], result['pin'], result

    def publish_crl(self) -> None:
        with self.open() as ca:
            ca.publish_crl(dest=str(self.crl))

    def record(self, serial: str):
        with self.open() as ca, ca.store.read():
            return ca.store.get(serial)


@pytest.fixture
def portal_parts(tmp_path):
    skip_without_parts()
    collections = ensure_collection_link()
    officer = Officer(tmp_path, collections)
    (tmp_path / 'etc').mkdir(mode=0o700)
    secret = tmp_path / 'etc' / 'secret.key'
    secret.write_text(os.urandom(32).hex())
    passphrase = tmp_path / 'etc' / 'ca.pass'
    passphrase.write_text(PASSPHRASE)
    for path in (secret, passphrase):
        os.chmod(path, 0o600)
    server = PortalServer(tmp_path / 'portal', collections, {
        'ca_path': officer.path, 'ca_passphrase_file': str(passphrase), 'secret_key_file': str(secret),
        'throttle_failures': 50})
    nginx = MtlsServer(tmp_path / 'nginx', officer.ca_pem, officer.crl)
    screenshots = os.environ.get('CERTFLEET_SCREENSHOTS_DIR')
    browser = None
    server.start()
    nginx.start()
    try:
        browser = Browser(tmp_path / 'chromium', pathlib.Path(screenshots) if screenshots else None)
        yield officer, server, nginx, browser
    finally:
        if browser is not None:
            browser.quit()
        nginx.stop()
        server.stop()


def _nginx_saw(nginx, serial: str, status: int) -> str:
    """nginx's verification result of a request with ``serial`` answered with ``status``. Its log line lands just
    after the response, so wait a moment for it rather than read the last line."""
    deadline = time.monotonic() + 10
    while True:
        found = [e['verify'] for e in nginx.entries()
                 if e['serial'] == normalize_serial(serial) and e['status'] == status]
        if found or time.monotonic() > deadline:
            return found[-1] if found else '(no request with serial %s answered %d)' % (serial, status)
        time.sleep(0.2)


def test_a_person_picks_up_renews_and_confirms_in_a_real_browser(portal_parts, tmp_path):
    officer, server, nginx, browser = portal_parts
    first = officer.issue('alice', 'Alice Example')
    url, pin, _created = officer.pickup('alice', server.base_url)
    wrong = str((int(pin) + 1) % 10 ** 8).zfill(8)

    browser.open(url)
    assert browser.heading() == 'Enter your PIN'
    browser.shoot('pin-en')
    browser.open(url + '?lang=ja')
    assert browser.heading() == 'PIN を入力してください'
    browser.shoot('pin-ja')
    browser.open(url + '?lang=en')
    browser.enter_pin(wrong)
    assert 'Attempts left: 4' in browser.find('error').text
    browser.shoot('wrong-pin')
    browser.enter_pin(pin)
    assert browser.heading() == 'Check and download'
    assert 'Alice Example' in browser.find('details').text and first['serial'] in browser.find('details').text
    browser.shoot('confirm')
    page = browser.driver.page_source
    replay = dict(re.findall(r'name="(csrf|ticket)" value="([^"]*)"', page.split('/download"', 1)[1])[:2])
    browser.download()
    p12 = browser.wait_for_download('alice.p12')
    browser.click('done')
    assert browser.heading() == 'Download complete'
    browser.shoot('done')

    # The file opens with the PIN and authenticates to a real mTLS server.
    status, body = curl_visit(p12, pin, nginx.pki['ca'], nginx.url, tmp_path)
    assert status == 200 and normalize_serial(body.split('serial=')[1].split('<')[0]) == normalize_serial(
        first['serial'])
    # A second download is refused, even with a valid cookie, CSRF token and PIN ticket; the link is dead.
    status, _body = post(url + '/download', replay, browser.cookies())
    assert status == 404
    browser.open(url)
    assert browser.heading() == 'This link is not available'
    browser.shoot('unavailable')

    first_pin = pin
    # A renewal: the person downloads the new certificate and confirms; only then is the old serial revoked.
    renewed = officer.issue('alice', 'Alice Example', force=True)
    url, pin, created = officer.pickup('alice', server.base_url)
    assert created['renewal_of'] == first['serial']
    browser.open(url)
    browser.enter_pin(pin)
    kept = p12.rename(tmp_path / 'first.p12')
    browser.download()
    new_p12 = browser.wait_for_download('alice.p12')
    browser.click('done')
    assert first['serial'] in browser.driver.page_source
    browser.shoot('done-renewal')
    assert officer.record(first['serial']).status == 'valid'  # both valid until the person confirms
    browser.click('confirm')
    assert browser.heading() == 'Thank you'
    browser.shoot('replaced')
    assert officer.record(first['serial']).status == 'revoked'
    assert officer.record(first['serial']).revocation_reason == 'superseded'

    officer.publish_crl()
    crl_text = subprocess.run(['openssl', 'crl', '-in', str(officer.crl), '-noout', '-text'], capture_output=True,
                              text=True, check=True).stdout
    listed = {normalize_serial(s) for s in re.findall(r'Serial Number: ([0-9A-Fa-f]+)', crl_text)}
    assert normalize_serial(first['serial']) in listed and normalize_serial(renewed['serial']) not in listed
    nginx.reload()
    status, _body = curl_visit(kept, first_pin, nginx.pki['ca'], nginx.url, tmp_path)
    assert status == 400 and 'revoked' in _nginx_saw(nginx, first['serial'], 400)
    status, _body = curl_visit(new_p12, pin, nginx.pki['ca'], nginx.url, tmp_path)
    assert status == 200
    assert _nginx_saw(nginx, renewed['serial'], 200) == 'SUCCESS'

    # Nothing secret in the server's log; the pickup ids are there.
    log = server.log_text()
    assert created['pickup_id'] in log
    assert pin not in log and url.rsplit('.', 1)[1] not in log


def test_wrong_pins_lock_csrf_is_checked_and_the_window_closes_by_time(portal_parts):
    officer, server, _nginx, browser = portal_parts
    officer.issue('bob', 'Bob Example')
    url, pin, _created = officer.pickup('bob', server.base_url, max_attempts=3)

    # A POST without the CSRF token is refused and counts no attempt.
    status, _body = post(url, {'pin': pin})
    assert status == 403
    wrong = str((int(pin) + 1) % 10 ** 8).zfill(8)
    browser.open(url)
    assert 'Attempts left before the pickup locks: 3' in browser.driver.page_source
    for left in (2, 1):
        browser.enter_pin(wrong)
        assert 'Attempts left: %d' % left in browser.find('error').text
    browser.enter_pin(wrong)
    assert browser.heading() == 'This link is not available' and 'locked' in browser.driver.page_source
    browser.shoot('locked')
    browser.open(url)
    assert browser.heading() == 'This link is not available'  # the right PIN is too late

    # The window closes by the store's time: the officer's nightly expiry run, six days ahead.
    officer.issue('carol', 'Carol Example')
    url, pin, _created = officer.pickup('carol', server.base_url, expire_after_issue_days=5)
    browser.open(url)
    assert browser.heading() == 'Enter your PIN'
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=6)
    with officer.open(clock=lambda: later) as ca:
        assert ca.expire_pickups()['expired']
    browser.open(url)
    assert browser.heading() == 'This link is not available'
