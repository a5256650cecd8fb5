# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pickup portal's WSGI application called in-process (issue 13): real CA, real store, real PKCS#12; only the
CA's clock is a FakeClock. The production server and a real browser are in tests/integration/test_pickup_portal.py."""

from __future__ import annotations

import io
import logging
import plistlib
import re
import urllib.parse

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError
from ansible_collections.certfleet.pki.plugins.module_utils.portal import app as portal_app
from ansible_collections.certfleet.pki.plugins.module_utils.portal import texts

BASE = 'https://pki.example.org'
ANDROID = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36'


class Client:
    """A browser stand-in: keeps cookies, sends forms, parses hidden fields."""

    def __init__(self, app, address='192.0.2.10', language='en'):
        self.app, self.address, self.language = app, address, language
        self.cookies = {}

    def request(self, method, path, form=None, query=''):
        body = urllib.parse.urlencode(form or {}).encode('ascii')
        environ = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': query, 'REMOTE_ADDR': self.address,
                   'CONTENT_LENGTH': str(len(body)), 'wsgi.input': io.BytesIO(body), 'HTTP_USER_AGENT': ANDROID,
                   'HTTP_ACCEPT_LANGUAGE': self.language,
                   'HTTP_COOKIE': '; '.join('%s=%s' % item for item in self.cookies.items())}
        captured = {}

        def start_response(status, headers):
            captured['status'], captured['headers'] = int(status.split()[0]), headers

        content = b''.join(self.app(environ, start_response))
        for name, value in captured['headers']:
            if name == 'Set-Cookie':
                key, _sep, rest = value.partition('=')
                self.cookies[key] = rest.split(';', 1)[0]
        return captured['status'], dict(captured['headers']), content

    def fields(self, content: bytes, action: str) -> dict:
        """The hidden fields of the form posting to ``.../action``."""
        page = content.decode('utf-8')
        form = re.search(r'<form method="post" action="[^"]*%s"[^>]*>(.*?)</form>' % re.escape(action), page).group(1)
        return dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))


@pytest.fixture
def portal(ca, tmp_path):
    ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'})
    (tmp_path / 'secret').write_text('k' * 48)
    (tmp_path / 'passphrase').write_text(ca.passphrase)
    app = portal_app.create_app({'ca_path': ca.path, 'ca_passphrase_file': str(tmp_path / 'passphrase'),
                                 'secret_key_file': str(tmp_path / 'secret'), 'base_url': BASE,
                                 'throttle_failures': 6}, clock=ca.clock)
    yield app
    app.close()


def create(ca, identity='alice', **options):
    options.setdefault('base_url', BASE)
    with ca.open(unlock=False) as managed:
        result = managed.create_pickup(identity=identity, **options)
    return '/p/' + result['url'].rsplit('/p/', 1)[1], result


def walk_to_confirm(client, path, pin):
    status, headers, content = client.request('GET', path)
    assert status == 200
    return client.request('POST', path, dict(client.fields(content, path), pin=pin))


def test_the_whole_flow_downloads_a_pkcs12_the_pin_opens_and_only_once(ca, portal, caplog):
    caplog.set_level(logging.INFO, logger='certfleet.portal')
    path, created = create(ca)
    client = Client(portal)
    status, headers, content = client.request('GET', path)
    assert status == 200 and b'id="pin"' in content
    assert headers['X-Frame-Options'] == 'DENY' and headers['Referrer-Policy'] == 'no-referrer'
    assert headers['Content-Security-Policy'].startswith("default-src 'self'")
    assert headers['Cache-Control'] == 'no-store' and 'Strict-Transport-Security' in headers
    assert 'SameSite=Strict' in headers['Set-Cookie'] and 'Secure' in headers['Set-Cookie']
    status, _headers, content = client.request('POST', path, dict(client.fields(content, path), pin=created['pin']))
    page = content.decode('utf-8')
    assert status == 200 and 'Alice Example' in page and created['serial'] in page
    assert texts.ADVICE['en']['android'].split(' > ', maxsplit=1)[0] in page  # advice for the browser's system
    assert created['pin'] not in page  # the PIN travels sealed
    status, headers, content = client.request('POST', path + '/download', client.fields(content, '/download'))
    assert status == 200 and headers['Content-Type'] == 'application/x-pkcs12'
    assert headers['Content-Disposition'] == 'attachment; filename="alice.p12"'
    assert headers['Cache-Control'] == 'no-store'
    _key, certificate, _chain = pkcs12.load_key_and_certificates(content, created['pin'].encode('ascii'))
    assert certificate.serial_number == int(created['serial'], 16)
    status, _headers, content = client.request('GET', path)
    assert status == 404 and b'not valid or no longer available' in content
    assert Client(portal).request('GET', path)[0] == 404
    audited = [(e['action'], e['outcome'], e['detail'].get('client')) for e in ca.audit()
               if e['action'] in ('pickup_pin', 'pickup_download')]
    assert ('pickup_pin', 'accepted', '192.0.2.10') in audited
    assert ('pickup_download', 'downloaded', '192.0.2.10') in audited
    secret = path.rsplit('.', 1)[1]
    assert secret not in repr(ca.audit()) and created['pin'] not in repr(ca.audit())
    assert created['pickup_id'] in caplog.text
    assert secret not in caplog.text and created['pin'] not in caplog.text


def test_a_post_without_the_csrf_token_is_refused(ca, portal):
    path, created = create(ca)
    client = Client(portal)
    _status, _headers, content = client.request('GET', path)
    status, _headers, _content = client.request('POST', path, {'pin': created['pin']})
    assert status == 403
    other = Client(portal)  # a token from another browser's cookie does not fit this one
    other.request('GET', path)
    status, _headers, _content = other.request('POST', path, dict(client.fields(content, path), pin=created['pin']))
    assert status == 403
    with ca.open(unlock=False) as managed:
        assert managed.pickups()['pickups'][0]['failed_attempts'] == 0


def test_wrong_pins_count_down_and_lock_the_pickup(ca, portal):
    path, created = create(ca, max_attempts=3)
    client = Client(portal)
    wrong = str((int(created['pin']) + 1) % 10 ** 8).zfill(8)
    status, _headers, content = walk_to_confirm(client, path, wrong)
    assert status == 400 and b'Attempts left: 2' in content
    status, _headers, content = client.request('POST', path, dict(client.fields(content, path), pin=wrong))
    assert b'Attempts left: 1' in content
    status, _headers, content = client.request('POST', path, dict(client.fields(content, path), pin=wrong))
    assert status == 403 and b'locked' in content
    assert Client(portal).request('GET', path)[0] == 404


def test_one_address_is_throttled_across_pickups(ca, portal):
    client = Client(portal, address='198.51.100.7')
    for identity in ('t1', 't2', 't3'):
        ca.ensure(identity)
        path, created = create(ca, identity)
        wrong = str((int(created['pin']) + 1) % 10 ** 8).zfill(8)
        _status, _headers, content = client.request('GET', path)
        for _attempt in range(2):
            status, _headers, content = client.request('POST', path, dict(client.fields(content, path), pin=wrong))
            assert status == 400
    status, _headers, content = client.request('POST', path, dict(client.fields(content, path), pin=created['pin']))
    assert status == 429 and b'Too many attempts' in content
    assert walk_to_confirm(Client(portal), path, created['pin'])[0] == 200  # other addresses go on


def test_the_window_closes_by_time(ca, portal):
    path, created = create(ca, expire_after_issue_days=10)
    client = Client(portal)
    assert client.request('GET', path)[0] == 200
    ca.clock.advance(days=11)
    assert client.request('GET', path)[0] == 404


def test_a_renewal_is_confirmed_by_the_person_and_the_old_serial_revoked(ca, portal):
    old = ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'})
    ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'}, force=True)
    path, created = create(ca)
    assert created['renewal_of'] == old['serial']
    client = Client(portal)
    _status, _headers, content = walk_to_confirm(client, path, created['pin'])
    done = client.fields(content, '/done')
    status, _headers, _content = client.request('POST', path + '/confirm', done)
    assert status == 409  # not downloaded yet: nothing is revoked
    assert ca.record(old['serial']).status == 'valid'
    assert client.request('POST', path + '/download', client.fields(content, '/download'))[0] == 200
    status, _headers, content = client.request('POST', path + '/done', done)
    assert status == 200 and old['serial'].encode() in content and b'id="confirm"' in content
    status, _headers, content = client.request('POST', path + '/confirm', client.fields(content, '/confirm'))
    assert status == 200 and b'switched off' in content
    assert ca.record(old['serial']).status == 'revoked'
    assert ca.record(old['serial']).revocation_reason == 'superseded'


def test_japanese_from_the_browser_and_the_switch(ca, portal):
    path, _created = create(ca)
    client = Client(portal, language='ja,en;q=0.8')
    status, _headers, content = client.request('GET', path)
    assert status == 200 and b'<html lang="ja"' in content and 'PIN を入力'.encode() in content
    status, _headers, content = client.request('GET', path, query='lang=en')
    assert b'<html lang="en"' in content and client.cookies[portal_app.LANG_COOKIE] == 'en'
    status, _headers, content = client.request('GET', path)
    assert b'<html lang="en"' in content  # the choice is remembered


def test_oversized_bodies_unknown_paths_and_the_stylesheet(ca, portal):
    path, _created = create(ca)
    client = Client(portal)
    client.request('GET', path)
    assert client.request('POST', path, {'pin': 'x' * 5000})[0] == 413
    assert client.request('GET', '/p/nothing')[0] == 404
    status, headers, _content = client.request('GET', '/static/portal.css')
    assert status == 200 and headers['Content-Type'].startswith('text/css')


@pytest.mark.parametrize('header, expected', [('ja-JP,ja;q=0.9', 'ja'), ('de,en;q=0.5,ja;q=0.7', 'ja'),
                                              ('fr', 'en'), ('', 'en')])
def test_language_choice(header, expected):
    assert texts.choose_language(None, None, header) == expected


def test_the_advice_follows_the_system():
    assert texts.operating_system('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)') == 'ios'
    assert texts.operating_system('Mozilla/5.0 (Windows NT 10.0; Win64; x64)') == 'windows'
    assert texts.advice('en', 'mobileconfig', 'Mozilla/5.0 (Windows NT 10.0)') == texts.ADVICE['en']['mobileconfig']
    assert set(texts.MESSAGES['en']) == set(texts.MESSAGES['ja'])
    assert set(texts.ADVICE['en']) == set(texts.ADVICE['ja'])


def test_a_configuration_profile_downloads_for_an_iphone(ca, portal):
    path, created = create(ca, format='mobileconfig')
    client = Client(portal)
    _status, _headers, content = walk_to_confirm(client, path, created['pin'])
    status, headers, content = client.request('POST', path + '/download', client.fields(content, '/download'))
    assert status == 200 and headers['Content-Type'] == 'application/x-apple-aspen-config'
    assert headers['Content-Disposition'] == 'attachment; filename="alice.mobileconfig"'
    profile = plistlib.loads(content)
    assert {item['PayloadType'] for item in profile['PayloadContent']} >= {'com.apple.security.pkcs12'}


def test_the_address_behind_a_trusted_proxy_is_the_forwarded_one(ca, tmp_path):
    (tmp_path / 'secret').write_text('s' * 40)
    (tmp_path / 'passphrase').write_text(ca.passphrase)
    app = portal_app.create_app({'ca_path': ca.path, 'ca_passphrase_file': str(tmp_path / 'passphrase'),
                                 'secret_key_file': str(tmp_path / 'secret'), 'base_url': BASE,
                                 'trusted_proxies': ['127.0.0.1']}, clock=ca.clock)
    environ = {'REMOTE_ADDR': '127.0.0.1', 'HTTP_X_FORWARDED_FOR': '203.0.113.9, 198.51.100.20'}
    assert portal_app.Request(environ, app.config).client == '198.51.100.20'  # what the proxy itself saw
    environ['REMOTE_ADDR'] = '192.0.2.99'
    assert portal_app.Request(environ, app.config).client == '192.0.2.99'  # a client cannot claim an address


def test_the_config_is_checked(tmp_path):
    (tmp_path / 'short').write_text('too short')
    with pytest.raises(CertfleetError, match='exactly one of ca_path and ca_store'):
        portal_app.create_app({'secret_key_file': str(tmp_path / 'short')})
    with pytest.raises(CertfleetError, match='at least 32'):
        portal_app.create_app({'ca_path': str(tmp_path), 'secret_key_file': str(tmp_path / 'short')})
    with pytest.raises(CertfleetError, match='unknown portal settings: pin'):
        portal_app.create_app({'ca_path': str(tmp_path), 'pin': '1'})


def test_a_broken_ca_gives_a_plain_error_page_and_a_log_without_the_token(ca, tmp_path, caplog):
    ca.ensure('alice')
    path, _created = create(ca)
    (tmp_path / 'secret').write_text('s' * 40)
    (tmp_path / 'passphrase').write_text('not the passphrase')
    app = portal_app.create_app({'ca_path': ca.path, 'ca_passphrase_file': str(tmp_path / 'passphrase'),
                                 'secret_key_file': str(tmp_path / 'secret'), 'base_url': BASE}, clock=ca.clock)
    status, headers, content = Client(app).request('GET', path)
    assert status == 500 and b'Something went wrong' in content and headers['X-Frame-Options'] == 'DENY'
    assert path.split('/p/')[1].split('.')[0] in caplog.text and path.rsplit('.', 1)[1] not in caplog.text


# -- the officer's notices, through a real SMTP server on 127.0.0.1 (tests/support/smtp_capture.py) ----------------
import email  # noqa: E402
import email.policy  # noqa: E402

import smtp_capture  # noqa: E402  pylint: disable=import-error

smtp_server = smtp_capture.smtp_server


def _mail_text(raw: bytes) -> str:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return '\n'.join(part.get_content() for part in parsed.walk() if part.get_content_type() == 'text/plain')


@pytest.fixture
def noticing_portal(ca, tmp_path, smtp_server):
    (tmp_path / 'secret').write_text('k' * 48)
    (tmp_path / 'passphrase').write_text(ca.passphrase)
    app = portal_app.create_app({'ca_path': ca.path, 'ca_passphrase_file': str(tmp_path / 'passphrase'),
                                 'secret_key_file': str(tmp_path / 'secret'), 'base_url': BASE,
                                 'notices': {'smtp': smtp_server.settings}}, clock=ca.clock)
    yield app, smtp_server
    app.close()


def test_the_officer_is_told_of_the_download_with_the_handback_then_of_the_replacement(ca, noticing_portal):
    app, server = noticing_portal
    old = ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'})
    ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'}, force=True)
    path, created = create(ca)
    client = Client(app)
    _status, _headers, content = walk_to_confirm(client, path, created['pin'])
    done = client.fields(content, '/done')
    assert client.request('POST', path + '/download', client.fields(content, '/download'))[0] == 200
    (downloaded,) = [m['data'] for m in server.messages]
    text = _mail_text(downloaded)
    assert 'CN=Alice Example,O=Example Org' in text and created['serial'] in text and '192.0.2.10' in text
    assert 'revoke\talice\t%s\tsuperseded' % old['serial'] in text  # the ready-made revocation request
    secret = path.rsplit('.', 1)[1]
    assert created['pin'].encode() not in downloaded and secret.encode() not in downloaded
    _status, _headers, content = client.request('POST', path + '/done', done)
    assert client.request('POST', path + '/confirm', client.fields(content, '/confirm'))[0] == 200
    replaced = _mail_text(server.messages[1]['data'])
    assert old['serial'] in replaced and created['serial'] in replaced and 'revoked' in replaced
    kinds = [e['detail'].get('kind') for e in ca.audit() if e['action'] == 'notice']
    assert kinds == ['download_complete', 'replacement_complete']


def test_a_notice_that_cannot_go_out_leaves_the_download_done(ca, tmp_path, caplog):
    ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'})
    (tmp_path / 'secret').write_text('k' * 48)
    (tmp_path / 'passphrase').write_text(ca.passphrase)
    closed_port = smtp_capture._free_port()  # pylint: disable=protected-access
    app = portal_app.create_app({'ca_path': ca.path, 'ca_passphrase_file': str(tmp_path / 'passphrase'),
                                 'secret_key_file': str(tmp_path / 'secret'), 'base_url': BASE,
                                 'notices': {'smtp': {'host': '127.0.0.1', 'port': closed_port, 'security': 'none',
                                                      'from': 'ca@example.org', 'to': ['officer@example.org'],
                                                      'timeout': 2}}}, clock=ca.clock)
    try:
        path, created = create(ca)
        client = Client(app)
        _status, _headers, content = walk_to_confirm(client, path, created['pin'])
        status, _headers, _content = client.request('POST', path + '/download', client.fields(content, '/download'))
        assert status == 200
        assert 'download_complete notice was not sent' in caplog.text and created['pin'] not in caplog.text
        assert [e for e in ca.audit() if e['action'] == 'pickup_download']
        assert not [e for e in ca.audit() if e['action'] == 'notice']
    finally:
        app.close()
