# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The notice module in-process against a real SMTP server: settings from the smtp option or CERTFLEET_SMTP_*,
check mode, failures naming the setting, no secret in the result, and documentation matching the argument spec."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.certfleet.pki.plugins.modules import client_certificate_notice

import smtp_capture  # noqa: E402  pylint: disable=import-error
from smtp_capture import SMTP_PASSWORD  # pylint: disable=import-error

# The capturing SMTP server's fixtures (tests/support/smtp_capture.py), stopped after each test.
smtp_server, starttls_server, tls_material = (smtp_capture.smtp_server, smtp_capture.starttls_server,
                                              smtp_capture.tls_material)


def _run(capsys, args: dict) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        client_certificate_notice.main()
    return json.loads(capsys.readouterr().out)


def test_expiry_warnings_check_mode_then_sent_once(ca, capsys, smtp_server):
    ca.ensure('alice', subject={'CN': 'Alice Example'})
    args = {'ca_path': ca.path, 'kind': 'expiry_warning', 'expiring_within': 400, 'smtp': smtp_server.settings}
    predicted = _run(capsys, dict(args, _ansible_check_mode=True))
    assert predicted['changed'] is True and predicted['notices'][0]['sent'] is False
    assert smtp_server.messages == []
    sent = _run(capsys, args)
    assert sent['changed'] is True and sent['notices'][0]['recipients'] == ['officer@example.org']
    assert len(smtp_server.messages) == 1 and b'CN=Alice Example' in smtp_server.messages[0]['data']
    again = _run(capsys, args)
    assert again['changed'] is False and again['already_warned'][0]['identity'] == 'alice'
    assert len(smtp_server.messages) == 1


def test_settings_from_the_environment_and_a_wrong_password(ca, capsys, starttls_server, monkeypatch):
    ca.ensure('bob', subject={'CN': 'Bob Example'})
    given = starttls_server.settings
    for name in ('host', 'port', 'security', 'username', 'from', 'to', 'ca_file'):
        value = given[name]
        monkeypatch.setenv('CERTFLEET_SMTP_' + name.upper(), ','.join(value) if isinstance(value, list) else str(value))
    monkeypatch.setenv('CERTFLEET_SMTP_PASSWORD', 'wrong-password')
    args = {'ca_path': ca.path, 'kind': 'expiry_warning', 'expiring_within': 400}
    failed = _run(capsys, args)
    assert failed['failed'] is True and failed['field'] == 'smtp.password' and failed['error_code'] == 'smtp_auth'
    assert 'wrong-password' not in json.dumps(failed)
    monkeypatch.setenv('CERTFLEET_SMTP_PASSWORD', SMTP_PASSWORD)
    sent = _run(capsys, args)
    assert sent['changed'] is True and len(starttls_server.messages) == 1
    assert SMTP_PASSWORD not in json.dumps(sent)


def test_a_pickup_ready_notice_keeps_the_pin_out(ca, capsys, smtp_server):
    ca.ensure('carol')
    with ca.open(unlock=False) as managed:
        pickup = managed.create_pickup(identity='carol', base_url='https://pki.example.org')
    result = _run(capsys, {'ca_path': ca.path, 'kind': 'pickup_ready', 'pickup_id': pickup['pickup_id'],
                           'url': pickup['url'], 'secrets': [pickup['pin']], 'smtp': smtp_server.settings})
    assert result['changed'] is True and result['notices'][0]['serial'] == pickup['serial']
    [received] = smtp_server.messages
    assert pickup['url'].encode() in received['data'] and pickup['pin'].encode() not in received['data']
    assert pickup['pin'] not in json.dumps(result)


def test_documentation_matches_the_argument_spec():
    documented = yaml.safe_load(client_certificate_notice.DOCUMENTATION)['options']
    spec_smtp = set(client_certificate_notice.SMTP_SPEC)
    assert set(documented['smtp']['suboptions']) == spec_smtp
    assert documented['smtp']['suboptions']['password'].get('type') == 'str'
    assert set(documented['kind']['choices']) == {'pickup_ready', 'download_complete', 'replacement_complete',
                                                  'revocation_complete', 'expiry_warning'}
    for section in ('EXAMPLES', 'RETURN'):
        assert yaml.safe_load(getattr(client_certificate_notice, section))
