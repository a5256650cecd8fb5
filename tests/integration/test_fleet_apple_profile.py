# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apple profiles and the macOS keychain in the fleet playbooks' reconcile call, on a Linux host.

dora carries Firefox, the macOS keychain and an Apple profile (a file an MDM delivers); erin carries Firefox only.
certfleet.pki.issue writes dora's profile in the same reconcile call as her Firefox certificate, skips the keychain
(this host is Linux) and records what the host holds; a second run changes nothing although each run exports under
another one-time password; a forced renewal replaces the profile's certificate and revokes the old one only after;
the audit puts back a deleted profile. Checked from the files (plistlib, OpenSSL), certutil and the CA store.
"""

from __future__ import annotations

import json
import os
import pathlib
import plistlib
import secrets
import shutil
import stat
import subprocess
import sys

import pytest
from integration_support import AnsibleRunner, sqlite_rows
from test_audit_playbook import _recaps
from test_fleet_playbooks import PROFILES_INI, _entry, _nss_serials, write_fleet

KEYCHAIN_PASSWORD = 'login-keychain-' + secrets.token_urlsafe(12)  # the host's, handed to every reconcile call

pytestmark = pytest.mark.skipif(not all(shutil.which(tool) for tool in ('certutil', 'pk12util', 'openssl')),
                                reason='needs certutil, pk12util (libnss3-tools) and openssl')


@pytest.fixture(scope='module')
def fleet(tmp_path_factory, collections_path):
    base = tmp_path_factory.mktemp('profiles')
    ansible = AnsibleRunner(base / 'ansible')
    home = base / 'homes' / 'h1'
    (home / '.mozilla' / 'firefox' / 'p.default').mkdir(parents=True)
    (home / '.mozilla' / 'firefox' / 'profiles.ini').write_text(PROFILES_INI)
    mdm = base / 'mdm'
    mdm.mkdir(mode=0o700)
    tmp = base / 'tmp'
    tmp.mkdir()
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    group_vars = {'certfleet_ca_path': str(base / 'ca'), 'certfleet_ca_passphrase': secrets.token_urlsafe(24),
                  'certfleet_crl_dest': str(base / 'crl.pem'), 'certfleet_keychain_password': KEYCHAIN_PASSWORD}
    dora = dict(_entry('dora', home, ['firefox', 'macos_keychain', 'apple_profile']),
                apple_profile_dest=str(mdm / 'dora.mobileconfig'), apple_profile_include_password=True)
    hosts = {'h1': dict(local, certfleet_identities=[dora, _entry('erin', home, ['firefox'])])}
    inventory, mkca = write_fleet(base, group_vars, hosts, 'Profile Test CA')

    def play(name: str, extra_vars: dict | None = None, args=()):
        target = mkca if name == 'mkca' else pathlib.Path('certfleet.pki.%s' % name)
        return ansible.run(target, extra_vars=extra_vars, inventory=inventory, args=args, env={'TMPDIR': str(tmp)})

    run = play('mkca')
    assert run.returncode == 0, run.explain()
    return {'play': play, 'ca': base / 'ca', 'profile': mdm / 'dora.mobileconfig', 'mdm': mdm,
            'firefox': home / '.mozilla' / 'firefox' / 'p.default', 'tmp': tmp, 'base': base}


def _certificates(fleet, identity: str) -> list:
    return sqlite_rows(fleet['ca'] / 'state.db', 'SELECT serial, status, is_current FROM certificates '
                       'WHERE identity = ? ORDER BY issued_at', (identity,))


def _current(fleet, identity: str) -> str:
    return [serial for serial, _status, current in _certificates(fleet, identity) if current][0]


def _profile_serial(fleet) -> str:
    """The serial OpenSSL reads from the certificate in the profile's PKCS#12, opened with the password it carries."""
    with open(fleet['profile'], 'rb') as handle:
        profile = plistlib.load(handle)
    payload = next(p for p in profile['PayloadContent'] if p['PayloadType'] == 'com.apple.security.pkcs12')
    roots = [p for p in profile['PayloadContent'] if p['PayloadType'] == 'com.apple.security.root']
    assert len(roots) == 1  # our CA travels with the identity
    extracted = fleet['base'] / 'embedded.p12'
    extracted.write_bytes(payload['PayloadContent'])
    try:
        pem = subprocess.run(['openssl', 'pkcs12', '-in', str(extracted), '-passin', 'pass:' + payload['Password'],
                              '-nokeys', '-clcerts', '-legacy'], capture_output=True, check=True).stdout
    finally:
        extracted.unlink()
    out = subprocess.run(['openssl', 'x509', '-noout', '-serial'], input=pem, capture_output=True, check=True)
    return out.stdout.decode().strip().split('=', 1)[1].upper().lstrip('0')


def _deployed_stores(fleet, identity: str) -> list:
    rows = sqlite_rows(fleet['ca'] / 'state.db', 'SELECT stores FROM deployments WHERE identity = ? AND host = ?',
                       (identity, 'h1'))
    return json.loads(rows[0][0]) if rows else []


def test_issue_writes_the_profile_in_the_reconcile_call_and_skips_the_keychain_on_linux(fleet):
    run = fleet['play']('issue')
    assert run.returncode == 0, run.explain()
    assert 'include_role' not in run.stdout and 'deploy : ' not in run.stdout  # no identity took the deploy role
    dora = _current(fleet, 'dora')
    assert _profile_serial(fleet) == dora.lstrip('0')
    assert stat.S_IMODE(os.stat(fleet['profile']).st_mode) == 0o600
    assert {dora.lstrip('0'), _current(fleet, 'erin').lstrip('0')} <= _nss_serials(fleet['firefox'])
    assert sorted(_deployed_stores(fleet, 'dora')) == ['apple_profile', 'firefox']  # the keychain was skipped
    assert _deployed_stores(fleet, 'erin') == ['firefox']
    assert os.listdir(fleet['tmp']) == []


def test_a_second_run_changes_nothing_although_each_export_has_its_own_password(fleet):
    before = fleet['profile'].read_bytes()
    run = fleet['play']('issue')
    assert run.returncode == 0, run.explain()
    assert _recaps(run.stdout)['h1']['changed'] == 0
    assert fleet['profile'].read_bytes() == before


def test_a_forced_renewal_replaces_the_profile_and_revokes_the_old_certificate_after(fleet):
    old = _current(fleet, 'dora')
    run = fleet['play']('renew', extra_vars={'certfleet_force_identities': ['dora']})
    assert run.returncode == 0, run.explain()
    new = _current(fleet, 'dora')
    assert new != old and _profile_serial(fleet) == new.lstrip('0')
    serials = _nss_serials(fleet['firefox'])
    assert new.lstrip('0') in serials and old.lstrip('0') not in serials
    assert dict((serial, status) for serial, status, _current_flag in _certificates(fleet, 'dora'))[old] == 'revoked'
    again = fleet['play']('renew')
    assert again.returncode == 0, again.explain()
    assert _recaps(again.stdout).get('h1', {}).get('changed', 0) == 0


def test_the_audit_puts_back_a_deleted_profile_and_check_mode_only_reports_it(fleet):
    fleet['profile'].unlink()
    checked = fleet['play']('audit', args=['--check'])
    assert checked.returncode == 0, checked.explain()
    assert not fleet['profile'].exists() and '"missing": 1' in checked.stdout, checked.explain()
    run = fleet['play']('audit')
    assert run.returncode == 0, run.explain()
    assert _profile_serial(fleet) == _current(fleet, 'dora').lstrip('0')
    again = fleet['play']('audit', args=['-vvv'])
    assert again.returncode == 0 and _recaps(again.stdout)['h1']['changed'] == 0, again.explain()
    # The keychain password reached the call (no_log) and is nowhere in the -vvv output.
    assert 'keychain_password' in again.output and KEYCHAIN_PASSWORD not in again.output
