# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The revoke, export and report playbooks on a simulated fleet, checked from the CA store, the NSS databases, the
CRL and the written files, not from the playbooks' own output.

One story, in order (each step needs the previous one): a CA and three local hosts with their own homes and
Firefox profiles; certfleet.pki.issue deploys alice (h1: Firefox and Chromium), bob (h2, h3) and carol (h3); bad
input changes nothing; certfleet.pki.revoke revokes bob (with a fourth, unreachable host that carries bob too);
certfleet.pki.export backs up alice from the CA and carol from h3's Firefox profile; certfleet.pki.report writes
the inventory.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import stat
import subprocess
import sys

import pytest
from integration_support import AnsibleRunner, sqlite_rows

pytestmark = pytest.mark.skipif(not all(shutil.which(tool) for tool in ('certutil', 'pk12util', 'openssl')),
                                reason='needs certutil, pk12util (libnss3-tools) and openssl')

PROFILES_INI = '[Profile0]\nName=default\nIsRelative=1\nPath=p.default\nDefault=1\n'


def _entry(identity: str, home: pathlib.Path, stores: list) -> dict:
    return {'identity': identity, 'subject': {'CN': identity.title()}, 'email': '%s@example.org' % identity,
            'stores': stores, 'homes': [str(home)], 'key_type': 'ec-p256'}


def write_fleet(base: pathlib.Path, group_vars: dict, hosts: dict, ca_name: str) -> tuple:
    """(inventory, mkca playbook) of a simulated fleet in ``base``: the hosts with the group's variables, and a
    play that makes the CA those variables name."""
    inventory = base / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {'vars': group_vars, 'hosts': hosts}}))  # JSON is YAML
    mkca = base / 'mkca.yml'
    mkca.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'certfleet.pki.ca': {'ca_path': group_vars['certfleet_ca_path'],
                             'ca_passphrase': group_vars['certfleet_ca_passphrase'],
                             'subject': {'CN': ca_name}, 'key_type': 'ec-p256'}}]}]))
    return inventory, mkca


@pytest.fixture(scope='module')
def fleet(tmp_path_factory, collections_path):
    base = tmp_path_factory.mktemp('fleet')
    ansible = AnsibleRunner(base / 'ansible')
    homes = {}
    for host in ('h1', 'h2', 'h3', 'h4'):
        home = base / 'homes' / host
        (home / '.mozilla' / 'firefox' / 'p.default').mkdir(parents=True)
        (home / '.mozilla' / 'firefox' / 'profiles.ini').write_text(PROFILES_INI)
        homes[host] = home
    tmp = base / 'tmp'  # TMPDIR of every run: temporary files must not outlive a playbook
    tmp.mkdir()
    out = base / 'out'
    out.mkdir(mode=0o700)
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    group_vars = {'certfleet_ca_path': str(base / 'ca'), 'certfleet_ca_passphrase': secrets.token_urlsafe(24),
                  'certfleet_crl_dest': str(base / 'crl.pem'), 'certfleet_report_dir': str(base / 'reports'),
                  'certfleet_chromium_policy_dirs': [str(base / 'policies')]}
    hosts = {
        'h1': dict(local, certfleet_identities=[dict(_entry('alice', homes['h1'], ['firefox', 'chromium']),
                                                     auto_select_urls=['https://mtls.example.org'])]),
        'h2': dict(local, certfleet_identities=[_entry('bob', homes['h2'], ['firefox'])]),
        'h3': dict(local, certfleet_identities=[_entry('bob', homes['h3'], ['firefox']),
                                                _entry('carol', homes['h3'], ['firefox'])]),
    }
    inventory = base / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {'vars': group_vars, 'hosts': hosts}}))  # JSON is YAML
    # The same fleet plus h4, a host that carries bob but cannot be reached (nothing listens on port 1).
    unreachable = dict(hosts, h4={'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_port': 1,
                                  'ansible_user': 'nobody', 'ansible_python_interpreter': sys.executable,
                                  'certfleet_identities': [_entry('bob', homes['h4'], ['firefox'])]})
    inventory_h4 = base / 'inventory-h4.yml'
    inventory_h4.write_text(json.dumps({'all': {'vars': group_vars, 'hosts': unreachable}}))
    mkca = base / 'mkca.yml'
    mkca.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'certfleet.pki.ca': {'ca_path': group_vars['certfleet_ca_path'],
                             'ca_passphrase': group_vars['certfleet_ca_passphrase'],
                             'subject': {'CN': 'Fleet Test CA'}, 'key_type': 'ec-p256'}}]}]))
    state = {'ansible': ansible, 'base': base, 'homes': homes, 'tmp': tmp, 'out': out, 'inventory': inventory,
             'inventory_h4': inventory_h4, 'vars': group_vars, 'ca': base / 'ca'}

    def play(name: str, extra_vars: dict | None = None, inventory: pathlib.Path = inventory, args=()):
        target = mkca if name == 'mkca' else pathlib.Path('certfleet.pki.%s' % name)
        return ansible.run(target, extra_vars=extra_vars, inventory=inventory, args=args, env={'TMPDIR': str(tmp)})

    state['play'] = play
    run = play('mkca')
    assert run.returncode == 0, run.explain()
    run = play('issue')
    assert run.returncode == 0, run.explain()
    return state


def _store(fleet) -> list:
    return sqlite_rows(fleet['ca'] / 'state.db',
                       'SELECT identity, serial, status, revocation_reason, is_current FROM certificates '
                       'ORDER BY identity, issued_at')


def _deployments(fleet) -> list:
    return sqlite_rows(fleet['ca'] / 'state.db', 'SELECT identity, host, serial FROM deployments ORDER BY 1, 2')


def _nss_serials(db: pathlib.Path) -> set:
    """Serial numbers of the certificates with a key in an NSS database, as certutil lists them."""
    listing = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db], capture_output=True, text=True, check=True)
    serials = set()
    for line in listing.stdout.splitlines()[4:]:
        nickname = line[:60].strip()
        if not nickname or not line.rstrip().endswith('u,u,u'):
            continue
        pem = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db, '-n', nickname, '-a'], capture_output=True,
                             text=True, check=True).stdout
        for block in re.findall(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', pem, re.S):
            serial = subprocess.run(['openssl', 'x509', '-noout', '-serial'], input=block, capture_output=True,
                                    text=True, check=True).stdout
            serials.add(serial.strip().split('=', 1)[1].upper().lstrip('0'))
    return serials


def _profile(fleet, host: str) -> pathlib.Path:
    return fleet['homes'][host] / '.mozilla' / 'firefox' / 'p.default'


def _current(fleet, identity: str) -> str:
    return next(row[1] for row in _store(fleet) if row[0] == identity and row[4] == 1)


def _no_temporary_files(fleet) -> None:
    left = [p.name for p in fleet['tmp'].iterdir() if p.name.startswith('certfleet-')]
    assert left == [], left


def test_issue_deployed_the_fleet(fleet):
    alice, bob, carol = (_current(fleet, name) for name in ('alice', 'bob', 'carol'))
    assert _nss_serials(_profile(fleet, 'h1')) == {alice}
    assert _nss_serials(fleet['homes']['h1'] / '.local' / 'share' / 'pki' / 'nssdb') == {alice}
    assert _nss_serials(_profile(fleet, 'h2')) == {bob}
    assert _nss_serials(_profile(fleet, 'h3')) == {bob, carol}
    assert _deployments(fleet) == [('alice', 'h1', alice), ('bob', 'h2', bob), ('bob', 'h3', bob),
                                   ('carol', 'h3', carol)]
    # Chromium picks alice's certificate for her URL without asking: the policy names the CA and her subject
    policy = json.loads((fleet['base'] / 'policies' / 'certfleet-client-certificate.json').read_text())
    entries = [json.loads(entry) for entry in policy['AutoSelectCertificateForUrls']]
    assert entries == [{'pattern': 'https://mtls.example.org', 'certfleet_identity': 'alice',
                        'filter': {'ISSUER': {'CN': 'Fleet Test CA'}, 'SUBJECT': {'CN': 'Alice'}}}]


@pytest.mark.parametrize('extra_vars, message', [
    ({}, 'certfleet_revoke_identity is required'),
    ({'certfleet_revoke_identity': '  '}, 'certfleet_revoke_identity is required'),
    ({'certfleet_revoke_identity': 'bob', 'certfleet_revoke_reason': 'lost_laptop'},
     'certfleet_revoke_reason must be one of unspecified, key_compromise'),
    ({'certfleet_revoke_identity': 'bob', 'certfleet_revoke_which': 'newest'}, 'certfleet_revoke_which one of all'),
])
def test_revoke_bad_input_changes_nothing(fleet, extra_vars, message):
    before = (_store(fleet), _deployments(fleet), (fleet['base'] / 'crl.pem').read_bytes())
    run = fleet['play']('revoke', extra_vars)
    assert run.returncode != 0
    assert message in run.output, run.explain()
    assert 'Nothing was revoked' in run.output
    assert (_store(fleet), _deployments(fleet), (fleet['base'] / 'crl.pem').read_bytes()) == before


@pytest.mark.parametrize('extra_vars, message', [
    ({'certfleet_export_password': ''}, 'certfleet_export_password is required and must not be empty'),
    ({}, 'certfleet_export_password is required and must not be empty'),
    ({'certfleet_export_password': 'x', 'certfleet_export_encryption': 'rc2'},
     'certfleet_export_encryption modern or legacy'),
    ({'certfleet_export_password': 'x', 'certfleet_export_source': 'endpoint'},
     'certfleet_export_source=endpoint needs certfleet_export_host'),
])
def test_export_bad_input_writes_nothing(fleet, extra_vars, message):
    dest = fleet['out'] / 'never.p12'
    run = fleet['play']('export', dict(extra_vars, certfleet_export_identity='alice', certfleet_export_dest=str(dest)))
    assert run.returncode != 0
    assert message in run.output, run.explain()
    assert not dest.exists()
    _no_temporary_files(fleet)


def test_revoke_removes_the_identity_everywhere_it_can(fleet):
    bob = _current(fleet, 'bob')
    others = {name: _current(fleet, name) for name in ('alice', 'carol')}
    run = fleet['play']('revoke', {'certfleet_revoke_identity': 'bob', 'certfleet_revoke_reason': 'key_compromise'},
                        inventory=fleet['inventory_h4'])
    # h4 is unreachable: the run says so (exit 4) and lists it, and the revocation stands.
    assert run.returncode == 4, run.explain()
    assert re.search(r'"hosts_unfinished": \[\s*"h4"\s*\]', run.output), run.explain()
    assert re.search(r'"hosts_cleaned": \[\s*"h2",\s*"h3"\s*\]', run.output), run.explain()

    # The CA: bob revoked with the reason; the others untouched and current.
    rows = {row[1]: row for row in _store(fleet)}
    assert rows[bob][2:4] == ('revoked', 'key_compromise')
    for serial in others.values():
        assert rows[serial][2] == 'valid' and rows[serial][4] == 1
    # The CRL, read by OpenSSL, lists bob's serial with the reason.
    crl = subprocess.run(['openssl', 'crl', '-in', str(fleet['base'] / 'crl.pem'), '-noout', '-text'],
                         capture_output=True, text=True, check=True).stdout
    # OpenSSL prints even-length hex (a leading zero when the top nibble is zero); ours has none.
    padded = bob if len(bob) % 2 == 0 else '0' + bob
    entry = crl.split('Serial Number: %s' % padded, 1)
    assert len(entry) == 2, crl
    assert 'Key Compromise' in entry[1].split('Serial Number:')[0]
    for serial in others.values():
        assert serial not in crl
    # The stores: bob is gone from h2 and h3; alice and carol are where they were.
    assert _nss_serials(_profile(fleet, 'h2')) == set()
    assert _nss_serials(_profile(fleet, 'h3')) == {others['carol']}
    assert _nss_serials(_profile(fleet, 'h1')) == {others['alice']}
    assert _nss_serials(fleet['homes']['h1'] / '.local' / 'share' / 'pki' / 'nssdb') == {others['alice']}
    # The CA no longer records bob on the cleaned hosts.
    assert _deployments(fleet) == [('alice', 'h1', others['alice']), ('carol', 'h3', others['carol'])]

    # A second run on the reachable fleet changes nothing.
    again = fleet['play']('revoke', {'certfleet_revoke_identity': 'bob', 'certfleet_revoke_reason': 'key_compromise'})
    assert again.returncode == 0, again.explain()
    recap = [line for line in again.output.split('PLAY RECAP')[-1].splitlines() if 'ok=' in line]
    assert recap and all(' changed=0 ' in line for line in recap), again.explain()


def _pkcs12_fingerprint(path: pathlib.Path, password_file: pathlib.Path, legacy: bool) -> str:
    extra = ['-legacy'] if legacy else []
    info = subprocess.run(['openssl', 'pkcs12', '-info', '-noout', '-in', str(path), '-passin',
                           'file:%s' % password_file] + extra, capture_output=True, text=True, check=False)
    assert info.returncode == 0, info.stderr
    certs = subprocess.run(['openssl', 'pkcs12', '-in', str(path), '-passin', 'file:%s' % password_file, '-nokeys',
                            '-clcerts'] + extra, capture_output=True, text=True, check=True).stdout
    keys = subprocess.run(['openssl', 'pkcs12', '-in', str(path), '-passin', 'file:%s' % password_file, '-nocerts',
                           '-nodes'] + extra, capture_output=True, text=True, check=True).stdout
    assert 'PRIVATE KEY' in keys
    fingerprint = subprocess.run(['openssl', 'x509', '-noout', '-fingerprint', '-sha256'], input=certs,
                                 capture_output=True, text=True, check=True).stdout
    return fingerprint.strip().split('=', 1)[1].replace(':', '').upper()


def _fingerprint_of(fleet, serial: str) -> str:
    return sqlite_rows(fleet['ca'] / 'state.db', 'SELECT fingerprint_sha256 FROM certificates WHERE serial = ?',
                       (serial,))[0][0]


@pytest.mark.parametrize('source, identity, encryption', [
    ('ca', 'alice', 'modern'),
    ('endpoint', 'carol', 'modern'),
    ('endpoint', 'carol', 'legacy'),
])
def test_export(fleet, source, identity, encryption):
    password = 'pw %s' % secrets.token_urlsafe(12)
    password_file = fleet['base'] / 'p12-password'
    password_file.write_text(password)
    dest = fleet['out'] / ('%s-%s-%s.p12' % (identity, source, encryption))
    extra = {'certfleet_export_identity': identity, 'certfleet_export_dest': str(dest),
             'certfleet_export_password': password, 'certfleet_export_encryption': encryption,
             'certfleet_export_source': source}
    if source == 'endpoint':
        extra.update(certfleet_export_host='h3', certfleet_export_db=str(_profile(fleet, 'h3')))
    run = fleet['play']('export', extra)
    assert run.returncode == 0, run.explain()
    assert password not in run.output
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert _pkcs12_fingerprint(dest, password_file, encryption == 'legacy') == _fingerprint_of(
        fleet, _current(fleet, identity))
    _no_temporary_files(fleet)


def test_export_of_a_certificate_the_endpoint_does_not_hold_fails_clearly(fleet):
    dest = fleet['out'] / 'alice-from-h3.p12'
    run = fleet['play']('export', {'certfleet_export_identity': 'alice', 'certfleet_export_dest': str(dest),
                                   'certfleet_export_password': 'secret', 'certfleet_export_source': 'endpoint',
                                   'certfleet_export_host': 'h3', 'certfleet_export_db': str(_profile(fleet, 'h3'))})
    assert run.returncode != 0
    assert 'does not hold the current certificate of alice' in run.output, run.explain()
    assert not dest.exists()
    _no_temporary_files(fleet)


def test_report(fleet):
    run = fleet['play']('report', {'certfleet_report_expiring_within': 400})
    assert run.returncode == 0, run.explain()
    import csv
    with open(fleet['base'] / 'reports' / 'certificates.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    store = _store(fleet)
    assert sorted(row['serial'] for row in rows) == sorted(row[1] for row in store)
    by_serial = {row['serial']: row for row in rows}
    for identity, serial, status, reason, _current_flag in store:
        assert by_serial[serial]['identity'] == identity
        assert by_serial[serial]['status'] == status
        assert by_serial[serial]['revocation_reason'] == (reason or '')
    hosts = {row['identity']: row['hosts'] for row in rows if row['status'] == 'valid'}
    assert hosts == {'alice': 'h1', 'carol': 'h3'}
    # Every valid certificate expires within 400 days.
    assert {row['expiring'] for row in rows if row['status'] == 'valid'} == {'yes'}
    html = (fleet['base'] / 'reports' / 'certificates.html').read_text()
    assert '<svg' in html and '</svg>' in html
    assert 'http://' not in html.replace('http://www.w3.org/2000/svg', '') and 'https://' not in html
    for serial in by_serial:
        assert serial in html
    assert 'revoked (key_compromise)' in html
    assert '"expiring": 2' in run.output and '"revoked": 1' in run.output


TWO_ROLLOUTS = '''---
- name: The first roll-out rotates alice
  hosts: all
  gather_facts: false
  tasks:
    - name: Alice is forced
      ansible.builtin.set_fact:
        certfleet_force_identities: [alice]

- name: Renew alice
  ansible.builtin.import_playbook: certfleet.pki.renew

- name: The second roll-out, in the same run, rotates carol
  hosts: all
  gather_facts: false
  tasks:
    - name: Carol is forced
      ansible.builtin.set_fact:
        certfleet_force_identities: [carol]

- name: Renew carol
  ansible.builtin.import_playbook: certfleet.pki.renew
'''


def test_two_roll_outs_in_one_run_each_do_their_own_hosts(fleet):
    """h1 takes part in the first roll-out only: the second must not reuse its part (its files are gone)."""
    before = {name: _current(fleet, name) for name in ('alice', 'carol')}
    playbook = fleet['base'] / 'two-rollouts.yml'
    playbook.write_text(TWO_ROLLOUTS)
    run = fleet['ansible'].run(playbook, inventory=fleet['inventory'], env={'TMPDIR': str(fleet['tmp'])})
    assert run.returncode == 0, run.explain()
    after = {name: _current(fleet, name) for name in ('alice', 'carol')}
    assert after['alice'] != before['alice'] and after['carol'] != before['carol']
    assert _nss_serials(_profile(fleet, 'h1')) == {after['alice']}
    assert after['carol'] in _nss_serials(_profile(fleet, 'h3'))
    assert before['carol'] not in _nss_serials(_profile(fleet, 'h3'))
    revoked = {row[1] for row in _store(fleet) if row[2] == 'revoked'}
    assert {before['alice'], before['carol']} <= revoked
    _no_temporary_files(fleet)
