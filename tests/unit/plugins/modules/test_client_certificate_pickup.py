# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pickup modules in-process: arguments through AnsibleModule, results without hashes, a PIN only where the
task asked for it, and documentation that matches the argument spec."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.certfleet.pki.plugins.module_utils.ca import pickup as pickup_lib
from ansible_collections.certfleet.pki.plugins.modules import client_certificate_pickup, client_certificate_pickup_info


def _run(capsys, module, args: dict) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def _stored(ca, pickup_id):
    with ca.open(unlock=False) as managed, managed.store.read():
        return managed.store.get_pickup(pickup_id)


def test_pickup_module_with_a_pin_file_returns_no_pin_and_info_lists_it(ca, capsys, tmp_path):
    ca.ensure('alice')
    pin_file = tmp_path / 'pins' / 'alice.pin'
    args = {'ca_path': ca.path, 'identity': 'alice', 'base_url': 'https://pki.example.org',
            'format': 'pkcs12-legacy', 'pin_file': str(pin_file)}
    predicted = _run(capsys, client_certificate_pickup, dict(args, _ansible_check_mode=True))
    assert predicted['changed'] is True and predicted['url'] is None and not pin_file.exists()

    result = _run(capsys, client_certificate_pickup, args)
    pin = pin_file.read_text().strip()
    stored = _stored(ca, result['pickup_id'])
    text = json.dumps(result)
    assert result['changed'] is True and result['pin_returned'] is False and 'pin' not in result
    assert pin not in text and stored.pin_hash not in text and stored.token_hash not in text
    assert result['url'].startswith('https://pki.example.org/p/%s.' % result['pickup_id'])

    again = _run(capsys, client_certificate_pickup, args)
    assert again['changed'] is False and again['url'] is None and again['pickup_id'] == result['pickup_id']

    token = result['url'].rsplit('/p/', 1)[1]
    with ca.open() as managed:
        download = managed.download_pickup(token, pin, client='192.0.2.1')
    listed = _run(capsys, client_certificate_pickup_info, {'ca_path': ca.path})
    listing = json.dumps(listed)
    assert listed['changed'] is False and listed['counts']['picked_up'] == 1 and listed['counts']['total'] == 1
    assert listed['pickups'][0]['state'] == 'picked_up' and listed['pickups'][0]['subject'] == 'CN=alice'
    for secret in (pin, token.split('.', 1)[1], stored.pin_hash, stored.token_hash, download.content.hex()[:40]):
        assert secret not in listing
    assert _run(capsys, client_certificate_pickup_info, {'ca_path': ca.path, 'states': ['open']})['pickups'] == []


def test_pickup_module_without_a_pin_file_returns_the_pin_once_and_withdraws(ca, capsys):
    ca.ensure('bob')
    args = {'ca_path': ca.path, 'identity': 'bob', 'base_url': 'https://pki.example.org'}
    result = _run(capsys, client_certificate_pickup, args)
    assert result['pin_returned'] is True and len(result['pin']) == 8
    audit = json.dumps(ca.audit())
    assert result['pin'] not in audit and result['url'].rsplit('.', 1)[1] not in audit
    withdrawn = _run(capsys, client_certificate_pickup, {'ca_path': ca.path, 'identity': 'bob', 'state': 'absent'})
    assert withdrawn['changed'] is True and withdrawn['withdrawn'] == [result['pickup_id']]


def test_pickup_module_failures_name_the_field(ca, capsys):
    ca.ensure('carol')
    failed = _run(capsys, client_certificate_pickup, {'ca_path': ca.path, 'identity': 'carol',
                                                      'base_url': 'http://pki.example.org'})
    assert failed['failed'] is True and failed['field'] == 'base_url' and failed['error_code'] == 'invalid_input'
    missing = _run(capsys, client_certificate_pickup, {'ca_path': ca.path, 'identity': 'carol'})
    assert missing['failed'] is True and 'base_url' in missing['msg']
    with ca.open(unlock=False) as managed, managed.store.read():
        assert managed.store.find_pickups() == []


@pytest.mark.parametrize('module', [client_certificate_pickup, client_certificate_pickup_info])
def test_documentation_matches_the_argument_spec(module, monkeypatch):
    captured = {}

    class Stop(Exception):
        pass

    def fake_module(**kwargs):
        captured.update(kwargs)
        raise Stop()

    monkeypatch.setattr(module, 'AnsibleModule', fake_module)
    with pytest.raises(Stop):
        module.main()
    documented = yaml.safe_load(module.DOCUMENTATION)['options']
    spec = {k: v for k, v in captured['argument_spec'].items() if k not in ('ca_path', 'ca_store', 'ca_passphrase')}
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]['type'] == option['type'], name
        assert documented[name].get('default') == option.get('default'), name
        assert documented[name].get('choices') == option.get('choices'), name
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


def test_module_defaults_match_the_library():
    assert pickup_lib.DEFAULTS['max_downloads'] == 1 and pickup_lib.DEFAULTS['max_attempts'] == 5
