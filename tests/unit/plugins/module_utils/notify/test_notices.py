# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notices (issue 13) through a real SMTP server on 127.0.0.1: every kind arrives with the DN and the serial and
without any secret; STARTTLS with AUTH; failures name the setting and leave the audit log alone; S/MIME verifies
with openssl; expiry warnings go once per window; check mode sends nothing; the secret guard refuses."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import shutil
import subprocess

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.notify.events import NoticeSettings, notify_event
from ansible_collections.certfleet.pki.plugins.module_utils.notify.service import send_notice
from ansible_collections.certfleet.pki.plugins.module_utils.notify.smtp import NoticeError, SmtpSettings
from ansible_collections.certfleet.pki.plugins.module_utils.notify.templates import KINDS, render

import smtp_capture  # noqa: E402  pylint: disable=import-error
from smtp_capture import SMTP_PASSWORD, make_certificate, write_pem  # pylint: disable=import-error

# The capturing SMTP server's fixtures (tests/support/smtp_capture.py), stopped after each test.
smtp_server, starttls_server, tls_server, tls_material = (
    smtp_capture.smtp_server, smtp_capture.starttls_server, smtp_capture.tls_server, smtp_capture.tls_material)

BASE = 'https://pki.example.org'
SUBJECT = {'CN': 'Alice Example', 'O': 'Example Org'}
DN = 'CN=Alice Example,O=Example Org'


def notice(ca, check_mode=False, environ=None, **options) -> dict:
    with ca.open(unlock=False) as managed:
        return send_notice(managed, options, check_mode=check_mode, environ=environ or {})


def text_of(raw: bytes) -> str:
    """The decoded text parts of a received message."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return '\n'.join(part.get_content() for part in parsed.walk() if part.get_content_type() == 'text/plain')


def notices_in_audit(ca) -> list:
    return [e for e in ca.audit() if e['action'] == 'notice']


def assert_clean(raw: bytes, *secrets) -> None:
    """No secret, in clear or base64, and no key material in what the server received."""
    for secret in secrets:
        assert secret.encode() not in raw
        assert base64.b64encode(secret.encode()) not in raw
    assert b'PRIVATE KEY' not in raw and b'PKCS12' not in raw


@pytest.fixture
def renewed(ca):
    """alice: a first certificate, a renewal handed over through a pickup, downloaded and confirmed; bob: revoked."""
    first = ca.ensure('alice', subject=SUBJECT)
    ca.ensure('alice', subject=SUBJECT, force=True)
    with ca.open(unlock=False) as managed:
        pickup = managed.create_pickup(identity='alice', base_url=BASE)
    with ca.open() as managed:
        download = managed.download_pickup(pickup['url'].rsplit('/p/', 1)[1], pickup['pin'], client='192.0.2.7')
        managed.confirm_replacement(pickup_id=pickup['pickup_id'], by='officer')
    bob = ca.ensure('bob', subject={'CN': 'Bob Example'})
    ca.revoke(serial=bob['serial'], reason='key_compromise')
    return {'old': first['serial'], 'pickup': pickup, 'download': download, 'bob': bob['serial']}


def test_every_kind_arrives_with_the_dn_and_the_serial_and_no_secret(renewed, ca, smtp_server):
    pickup, download = renewed['pickup'], renewed['download']
    # pickup_ready needs an open pickup: a fresh one for carol.
    ca.ensure('carol', subject={'CN': 'Carol Example'})
    with ca.open(unlock=False) as managed:
        carol = managed.create_pickup(identity='carol', base_url=BASE)
    settings = {'smtp': smtp_server.settings}
    notice(ca, kind='pickup_ready', pickup_id=carol['pickup_id'], url=carol['url'], secrets=[carol['pin']], **settings)
    notice(ca, kind='download_complete', pickup_id=pickup['pickup_id'], **settings)
    notice(ca, kind='replacement_complete', identity='alice', **settings)
    notice(ca, kind='revocation_complete', serial=renewed['bob'], **settings)
    notice(ca, kind='expiry_warning', expiring_within=400, identities=['alice'], **settings)
    assert len(smtp_server.messages) == 5
    ready, downloaded, replaced, revoked, expiry = (m['data'] for m in smtp_server.messages)

    assert carol['url'] in text_of(ready) and 'CN=Carol Example' in text_of(ready)
    assert 'another channel' in text_of(ready)
    assert_clean(ready, carol['pin'])
    for raw in (downloaded, replaced, expiry):
        assert DN in text_of(raw) and download.serial in text_of(raw)
        assert_clean(raw, pickup['pin'], pickup['url'].rsplit('.', 1)[1])
        assert base64.b64encode(download.content[:48]) not in raw and download.content[:48] not in raw
    assert '192.0.2.7' in text_of(downloaded) and download.downloaded_at.strftime('%Y-%m-%dT%H:%M') in text_of(
        downloaded)
    assert renewed['old'] in text_of(replaced) and 'officer' in text_of(replaced)
    assert renewed['bob'] in text_of(revoked) and 'key_compromise' in text_of(revoked)
    assert all(m['to'] == ['officer@example.org'] and m['from'] == 'ca@example.org' for m in smtp_server.messages)

    audit = notices_in_audit(ca)
    assert [e['detail']['kind'] for e in audit] == list(KINDS)
    assert audit[1]['serials'] == [download.serial] and audit[1]['detail']['recipients'] == ['officer@example.org']
    assert carol['pin'] not in json.dumps(audit) and carol['url'].rsplit('.', 1)[1] not in json.dumps(audit)


def test_pickup_ready_refuses_a_url_of_another_pickup(ca, smtp_server):
    ca.ensure('carol')
    with ca.open(unlock=False) as managed:
        carol = managed.create_pickup(identity='carol', base_url=BASE)
    with pytest.raises(InputError) as err:
        notice(ca, kind='pickup_ready', identity='carol', url=BASE + '/p/AAAAAAAAAAAAAAAA.x',
               smtp=smtp_server.settings)
    assert err.value.field == 'url' and carol['pickup_id'] in err.value.message
    assert smtp_server.messages == [] and notices_in_audit(ca) == []


def test_starttls_with_auth_delivers_and_the_password_stays_out(ca, starttls_server):
    ca.ensure('alice', subject=SUBJECT)
    result = notice(ca, kind='expiry_warning', expiring_within=400, smtp=starttls_server.settings)
    assert [n['sent'] for n in result['notices']] == [True]
    [received] = starttls_server.messages
    assert DN in text_of(received['data'])
    assert_clean(received['data'], SMTP_PASSWORD)
    assert SMTP_PASSWORD not in json.dumps(result) and SMTP_PASSWORD not in json.dumps(ca.audit())


def test_implicit_tls_verifies_the_server_unless_told_not_to(ca, tls_server):
    ca.ensure('alice', subject=SUBJECT)
    notice(ca, kind='expiry_warning', expiring_within=400, smtp=tls_server.settings)
    assert len(tls_server.messages) == 1 and DN in text_of(tls_server.messages[0]['data'])
    untrusted = dict(tls_server.settings, ca_file=None)
    with pytest.raises(NoticeError) as err:
        notice(ca, kind='expiry_warning', expiring_within=399, smtp=untrusted)  # another window: due again
    assert err.value.field == 'smtp.ca_file' and len(tls_server.messages) == 1
    notice(ca, kind='expiry_warning', expiring_within=399, smtp=dict(untrusted, validate_certs=False))
    assert len(tls_server.messages) == 2


def test_copy_to_person_adds_the_certificates_addresses(ca, smtp_server):
    ca.ensure('erin', subject={'CN': 'Erin Example'}, email='erin@example.org')
    result = notice(ca, kind='expiry_warning', expiring_within=400, copy_to_person=True, smtp=smtp_server.settings)
    assert result['notices'][0]['recipients'] == ['officer@example.org', 'erin@example.org']
    assert smtp_server.messages[0]['to'] == ['officer@example.org', 'erin@example.org']


def test_the_settings_come_from_the_environment(ca, starttls_server):
    ca.ensure('alice', subject=SUBJECT)
    given = starttls_server.settings
    environ = {'CERTFLEET_SMTP_' + name.upper(): str(value) for name, value in given.items() if name != 'to'}
    environ['CERTFLEET_SMTP_TO'] = 'officer@example.org, second@example.org'
    result = notice(ca, kind='expiry_warning', expiring_within=400, environ=environ)
    assert result['notices'][0]['recipients'] == ['officer@example.org', 'second@example.org']
    assert starttls_server.messages[0]['to'] == ['officer@example.org', 'second@example.org']


def test_a_wrong_password_names_the_setting_and_records_nothing(ca, starttls_server):
    ca.ensure('alice', subject=SUBJECT)
    before = ca.audit()
    settings = dict(starttls_server.settings, password='not-the-password')
    with pytest.raises(NoticeError) as err:
        notice(ca, kind='expiry_warning', expiring_within=400, smtp=settings)
    assert err.value.field == 'smtp.password' and err.value.code == 'smtp_auth'
    assert 'smtp.password' in err.value.message and 'not-the-password' not in err.value.message
    assert starttls_server.messages == [] and ca.audit() == before


def test_an_untrusted_server_certificate_names_ca_file(ca, starttls_server):
    ca.ensure('alice', subject=SUBJECT)
    settings = dict(starttls_server.settings, ca_file=None)
    with pytest.raises(NoticeError) as err:
        notice(ca, kind='expiry_warning', expiring_within=400, smtp=settings)
    assert err.value.field == 'smtp.ca_file' and starttls_server.messages == []


def test_starttls_against_a_server_without_it_names_security(ca, smtp_server):
    ca.ensure('alice', subject=SUBJECT)
    with pytest.raises(NoticeError) as err:
        notice(ca, kind='expiry_warning', expiring_within=400, smtp=dict(smtp_server.settings, security='starttls'))
    assert err.value.field == 'smtp.security' and smtp_server.messages == [] and notices_in_audit(ca) == []


def test_a_closed_port_names_the_host_and_a_password_in_clear_is_refused(ca, smtp_server):
    ca.ensure('alice', subject=SUBJECT)
    with pytest.raises(NoticeError) as err:
        notice(ca, kind='expiry_warning', expiring_within=400, smtp=dict(smtp_server.settings, port=1))
    assert err.value.field == 'smtp.host' and '127.0.0.1:1' in err.value.message
    with pytest.raises(InputError) as err:
        SmtpSettings.from_options(dict(smtp_server.settings, host='mail.example.org', username='u', password='p'),
                                  environ={})
    assert err.value.field == 'smtp.security'


@pytest.mark.skipif(shutil.which('openssl') is None, reason='openssl is not installed')
def test_a_signed_notice_verifies_with_openssl(ca, smtp_server, tmp_path):
    ca.ensure('alice', subject=SUBJECT)
    authority = make_certificate('Mail Signing CA', ca=True)
    from cryptography.x509.oid import ExtendedKeyUsageOID
    signer = make_certificate('CA notices', authority, usage=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    options = {'smtp': smtp_server.settings, 'smime_certificate': write_pem(tmp_path / 'signer.pem', signer[0]),
               'smime_key': write_pem(tmp_path / 'signer.key', key=signer[1])}
    notice(ca, kind='expiry_warning', expiring_within=400, **options)
    [received] = smtp_server.messages
    mail = tmp_path / 'received.eml'
    mail.write_bytes(received['data'])
    ca_file = write_pem(tmp_path / 'mail-ca.pem', authority[0])
    verified = subprocess.run(['openssl', 'smime', '-verify', '-in', str(mail), '-CAfile', ca_file],
                              capture_output=True, check=False)
    assert verified.returncode == 0, verified.stderr
    assert DN in text_of(verified.stdout) and b'Verification successful' in verified.stderr
    assert b'multipart/signed' in received['data'] and b'Subject: Certificate expires' in received['data']
    # The same mail with its text changed no longer verifies: the signature covers the body.
    mail.write_bytes(received['data'].replace(b'Alice Example', b'Mallory Examp'))
    tampered = subprocess.run(['openssl', 'smime', '-verify', '-in', str(mail), '-CAfile', ca_file],
                              capture_output=True, check=False)
    assert tampered.returncode != 0


def test_expiry_warnings_go_once_per_certificate_and_window(ca, clock, smtp_server):
    ca.ensure('alice', subject=SUBJECT, valid_days=40)
    ca.ensure('bob', valid_days=20)
    ca.ensure('carol', valid_days=200)
    ca.ensure('dave', valid_days=10)
    settings = {'smtp': smtp_server.settings}
    first = notice(ca, kind='expiry_warning', expiring_within=30, exclude_identities=['dave'], **settings)
    assert first['changed'] is True and [n['identity'] for n in first['notices']] == ['bob']
    clock.advance(days=15)  # alice now expires within 30 days; bob was warned for this window already
    second = notice(ca, kind='expiry_warning', expiring_within=30, exclude_identities=['dave'], **settings)
    assert [n['identity'] for n in second['notices']] == ['alice']
    assert [w['identity'] for w in second['already_warned']] == ['bob']
    third = notice(ca, kind='expiry_warning', expiring_within=30, exclude_identities=['dave'], **settings)
    assert third['changed'] is False and third['notices'] == []
    shorter = notice(ca, kind='expiry_warning', expiring_within=7, **settings)  # a later reminder is a new window
    assert sorted(n['identity'] for n in shorter['notices']) == ['bob']  # dave expired, no longer current-valid
    assert [m['to'] for m in smtp_server.messages] == [['officer@example.org']] * 3
    windows = [(e['identity'], e['detail']['expiring_within']) for e in notices_in_audit(ca)]
    assert windows == [('bob', 30), ('alice', 30), ('bob', 7)]


def test_check_mode_composes_and_sends_nothing(ca, smtp_server):
    ca.ensure('alice', subject=SUBJECT)
    before = ca.audit()
    result = notice(ca, check_mode=True, kind='expiry_warning', expiring_within=400, smtp=smtp_server.settings)
    [predicted] = result['notices']
    assert result['changed'] is True and predicted['sent'] is False
    assert predicted['recipients'] == ['officer@example.org'] and 'Alice Example' in predicted['subject']
    assert 'message' not in predicted and 'body' not in predicted
    assert smtp_server.messages == [] and ca.audit() == before


def test_the_secret_guard_refuses_a_template_that_leaks(ca, smtp_server, tmp_path):
    ca.ensure('alice', subject=SUBJECT)
    templates = tmp_path / 'templates'
    templates.mkdir()
    # An edited template that (by mistake) puts the certificate's serial where a PIN would go; the serial is
    # given as a secret here to stand in for a PIN that reached the facts.
    (templates / 'expiry_warning.txt').write_text('Subject: Expiry of $identity\n\nYour PIN: $serial\n')
    serial = ca.records('alice')[0].serial
    with pytest.raises(NoticeError) as err:
        notice(ca, kind='expiry_warning', expiring_within=400, templates_dir=str(templates), secrets=[serial],
               smtp=smtp_server.settings)
    assert err.value.code == 'secret_in_notice' and serial not in err.value.message
    assert smtp_server.messages == [] and notices_in_audit(ca) == []
    with pytest.raises(NoticeError) as err:
        notice(ca, kind='expiry_warning', expiring_within=400, smtp=dict(smtp_server.settings, password='Alice',
                                                                         username='u'))
    assert err.value.code == 'secret_in_notice'  # the SMTP password is always one of the secrets


def test_templates_dir_overrides_one_kind_and_refuses_unknown_placeholders(tmp_path):
    (tmp_path / 'revocation_complete.txt').write_text('Subject: Revoked $serial\n\nGone: $subject ($reason)\n')
    subject, body = render('revocation_complete', {'serial': '0A', 'subject': 'CN=x', 'reason': 'superseded'},
                           str(tmp_path))
    assert subject == 'Revoked 0A' and body == 'Gone: CN=x (superseded)\n'
    assert 'Certificate picked up' in render('download_complete', {}, str(tmp_path))[0]  # others keep the default
    (tmp_path / 'expiry_warning.txt').write_text('Subject: x\n\n$pin\n')
    with pytest.raises(InputError) as err:
        render('expiry_warning', {}, str(tmp_path))
    assert err.value.field == 'templates_dir' and 'pin' in err.value.message


def test_notify_event_is_the_portals_hook(ca, smtp_server):
    ca.ensure('alice', subject=SUBJECT)
    with ca.open(unlock=False) as managed:
        pickup = managed.create_pickup(identity='alice', base_url=BASE)
    with ca.open() as managed:
        download = managed.download_pickup(pickup['url'].rsplit('/p/', 1)[1], pickup['pin'], client='198.51.100.4')
        sent = notify_event(managed, {'smtp': smtp_server.settings}, 'download_complete', serial=download.serial,
                            pickup_id=download.pickup_id, time=download.downloaded_at, client=download.client,
                            format=download.format, secrets=[pickup['pin']])
        settings = NoticeSettings.from_options({'smtp': smtp_server.settings}, environ={})
        with pytest.raises(NoticeError):
            notify_event(managed, settings, 'download_complete', serial=download.serial, client=pickup['pin'],
                         secrets=[pickup['pin']])
    assert sent['sent'] is True and sent['serial'] == download.serial
    [received] = smtp_server.messages
    assert DN in text_of(received['data']) and '198.51.100.4' in text_of(received['data'])
    assert_clean(received['data'], pickup['pin'])
    assert [e['detail']['kind'] for e in notices_in_audit(ca)] == ['download_complete']


def test_notify_event_after_a_confirmed_replacement(renewed, ca, smtp_server):
    pickup = renewed['pickup']
    with ca.open(unlock=False) as managed:
        confirmed = managed.confirm_replacement(pickup_id=pickup['pickup_id'], by='alice')  # already: unchanged
        notify_event(managed, {'smtp': smtp_server.settings}, 'replacement_complete', serial=confirmed['serial'],
                     old_serial=confirmed['old_serial'], confirmed_by='alice', time=confirmed['confirmed_at'])
        with pytest.raises(InputError) as err:
            notify_event(managed, {'smtp': smtp_server.settings}, 'welcome', serial=confirmed['serial'])
    assert err.value.field == 'kind'
    text = text_of(smtp_server.messages[0]['data'])
    assert confirmed['old_serial'] == renewed['old'] and renewed['old'] in text and confirmed['serial'] in text
    assert DN in text and len(smtp_server.messages) == 1
