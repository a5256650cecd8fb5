# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoint_reconcile module in-process, per system: which stores it runs, which it leaves to the deploy role,
and the macOS keychain through the module (security emulated by FakeSecurity of test_keychain.py)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import reconcile_keychain
from ansible_collections.certfleet.pki.plugins.modules import endpoint_reconcile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'module_utils',
                                'endpoints'))
from test_keychain import LOGIN_PASSWORD, FakeSecurity  # noqa: E402  pylint: disable=import-error,wrong-import-position

P12_PASSWORD = 'module transport secret'


def _run(capsys, args: dict) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        endpoint_reconcile.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def looked_up(monkeypatch) -> list:
    """The executables the module asked for (found here when they exist, as on the host they would be)."""
    names = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        names.append(name)
        return shutil.which(name) or '/usr/bin/%s' % name

    monkeypatch.setattr(AnsibleModule, 'get_bin_path', get_bin_path)
    return names


@pytest.fixture
def mac_home(ca, tmp_path, monkeypatch):
    monkeypatch.setattr(platform, 'system', lambda: 'Darwin')
    record = ca.ensure('alice')
    p12 = tmp_path / 'alice.p12'
    ca.export(identity='alice', dest=str(p12), password=P12_PASSWORD, iterations=1000)
    home = tmp_path / 'home'
    keychain = home / 'Library' / 'Keychains' / 'login.keychain-db'
    keychain.parent.mkdir(parents=True)
    keychain.write_bytes(b'kych')
    fake = FakeSecurity(str(keychain), locked=True)
    monkeypatch.setattr(reconcile_keychain, 'make_runner', lambda *args: fake)
    args = {'homes': [str(home)], 'ca_certificate': open(ca.file('ca.pem')).read(), 'keychain_trust_ca': False,
            'identities': [{'identity': 'alice', 'fingerprint_sha256': record['fingerprint_sha256'],
                            'pkcs12_path': str(p12), 'pkcs12_password': P12_PASSWORD}]}
    return {'args': args, 'fake': fake, 'keychain': str(keychain), 'record': record}


def test_on_a_mac_the_keychain_is_reconciled_by_the_module(mac_home, capsys, looked_up):
    fake = mac_home['fake']
    args = dict(mac_home['args'], keychain_password=LOGIN_PASSWORD, stores=['keychain'])
    result = _run(capsys, args)
    assert 'unsupported_platform' not in result and not result.get('failed'), result
    (outcome,) = result['stores']
    assert outcome['store'] == 'keychain' and outcome['path'] == mac_home['keychain']
    assert outcome['imported'] == ['alice'] and result['changed'] is True
    assert looked_up == ['security']  # no NSS tool is needed for the keychain alone
    assert len(fake.keys) == 1 and fake.stdin[0] == LOGIN_PASSWORD + '\n'
    text = json.dumps(result)
    assert LOGIN_PASSWORD not in text and P12_PASSWORD not in text

    again = _run(capsys, args)
    assert again['changed'] is False and again['stores'][0]['present'] == ['alice']


def test_a_locked_keychain_fails_the_task_with_the_store_result(mac_home, capsys, looked_up):
    result = _run(capsys, mac_home['args'])  # default stores on a Mac: firefox (no profile here) and keychain
    assert result['failed'] is True and 'keychain_password' in result['msg']
    assert [s['store'] for s in result['stores']] == ['keychain'] and result['stores'][0]['missing'] == ['alice']
    assert sorted(looked_up) == ['certutil', 'pk12util', 'security']
    assert not mac_home['fake'].keys


def test_chromium_on_a_mac_is_left_to_the_deploy_role(mac_home, capsys, looked_up, monkeypatch):
    warned = []
    monkeypatch.setattr(AnsibleModule, 'warn', lambda self, text: warned.append(text))
    result = _run(capsys, dict(mac_home['args'], stores=['firefox', 'chromium']))
    assert result['unsupported_platform'] == 'Darwin' and result['stores'] == [] and result['changed'] is False
    assert len(warned) == 1 and 'chromium has no NSS database on macOS' in warned[0]
    assert mac_home['fake'].calls == [] and looked_up == []


def test_another_system_is_left_to_the_deploy_role(mac_home, capsys, looked_up, monkeypatch):
    monkeypatch.setattr(platform, 'system', lambda: 'FreeBSD')
    result = _run(capsys, mac_home['args'])
    assert result['unsupported_platform'] == 'FreeBSD' and result['stores'] == []
    assert mac_home['fake'].calls == [] and looked_up == []


def test_the_keychain_store_on_linux_is_an_input_error(mac_home, capsys, looked_up, monkeypatch):
    monkeypatch.setattr(platform, 'system', lambda: 'Linux')
    result = _run(capsys, dict(mac_home['args'], stores=['keychain']))
    assert result['failed'] is True and result['field'] == 'stores' and 'does not exist on Linux' in result['msg']
    assert mac_home['fake'].calls == [] and looked_up == []


def test_the_keychain_password_is_no_log():
    assert "'keychain_password': {'type': 'str', 'no_log': True}" in open(endpoint_reconcile.__file__).read()
