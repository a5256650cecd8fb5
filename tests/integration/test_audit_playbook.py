# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""certfleet.pki.audit on a simulated fleet, checked from the NSS databases (certutil) and the CA store.

One story, in order: a CA and two local hosts; certfleet.pki.issue deploys alice (h1: Firefox, Chromium) and bob
and carol (h2: Firefox); an audit without drift changes nothing; then drift: h1's Firefox profile is replaced by a
fresh one and a second profile appears, bob is renewed and his revoked certificate is imported again by hand on h2,
a foreign certificate sits beside it; the audit puts alice back in both profiles, removes bob's revoked certificate
and leaves carol's and the foreign one alone; a second audit changes nothing. Then the real-client proof: headless
Firefox ESR, from each of h1's two repaired profiles, is accepted by nginx (the fleet's CA as client CA, the CRL
listing bob's revoked certificate), and nginx logs alice's current serial.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib
import re
import secrets
import shutil
import subprocess
import sys

import pytest
from browsers_support import (
    QUIET_FIREFOX_PREFS, MtlsServer, firefox_visit, normalize_serial, require_tools, trust_server_ca,
)
from integration_support import AnsibleRunner, sqlite_rows
from test_fleet_playbooks import PROFILES_INI, _entry, _nss_serials, write_fleet

pytestmark = pytest.mark.skipif(not all(shutil.which(tool) for tool in ('certutil', 'pk12util', 'openssl')),
                                reason='needs certutil, pk12util (libnss3-tools) and openssl')

TWO_PROFILES_INI = PROFILES_INI + '\n[Profile1]\nName=second\nIsRelative=1\nPath=p.second\n'
_HOST_RECAP = re.compile(r'^(h\d)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+'
                         r'skipped=(\d+)', re.M)


def _recaps(output: str) -> dict:
    return {m.group(1): {'ok': int(m.group(2)), 'changed': int(m.group(3)), 'failed': int(m.group(5)),
                         'skipped': int(m.group(6))} for m in _HOST_RECAP.finditer(output)}


@pytest.fixture(scope='module')
def fleet(tmp_path_factory, collections_path):
    base = tmp_path_factory.mktemp('audit')
    ansible = AnsibleRunner(base / 'ansible')
    homes = {}
    for host in ('h1', 'h2'):
        home = base / 'homes' / host
        (home / '.mozilla' / 'firefox' / 'p.default').mkdir(parents=True)
        (home / '.mozilla' / 'firefox' / 'profiles.ini').write_text(PROFILES_INI)
        homes[host] = home
    tmp = base / 'tmp'
    tmp.mkdir()
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    group_vars = {'certfleet_ca_path': str(base / 'ca'), 'certfleet_ca_passphrase': secrets.token_urlsafe(24),
                  'certfleet_crl_dest': str(base / 'crl.pem')}
    hosts = {'h1': dict(local, certfleet_identities=[_entry('alice', homes['h1'], ['firefox', 'chromium'])]),
             'h2': dict(local, certfleet_identities=[_entry('bob', homes['h2'], ['firefox']),
                                                     _entry('carol', homes['h2'], ['firefox'])])}
    inventory, mkca = write_fleet(base, group_vars, hosts, 'Audit Test CA')

    def play(name: str, extra_vars: dict | None = None, args=()):
        target = mkca if name == 'mkca' else base / name if name.endswith('.yml') else pathlib.Path(
            'certfleet.pki.%s' % name)
        return ansible.run(target, extra_vars=extra_vars, inventory=inventory, args=args, env={'TMPDIR': str(tmp)})

    for name in ('mkca', 'issue'):
        run = play(name)
        assert run.returncode == 0, run.explain()
    return {'base': base, 'homes': homes, 'tmp': tmp, 'play': play, 'vars': group_vars, 'ca': base / 'ca'}


def _current(fleet, identity: str) -> str:
    return sqlite_rows(fleet['ca'] / 'state.db', 'SELECT serial FROM certificates WHERE identity = ? AND is_current',
                       (identity,))[0][0]


def _firefox(fleet, host: str, profile: str = 'p.default'):
    return fleet['homes'][host] / '.mozilla' / 'firefox' / profile


def _foreign_certificate(folder) -> tuple:
    """A self-signed client certificate and key of another issuer, as a PKCS#12 file (path, password, serial)."""
    key, cert, p12 = folder / 'foreign.key', folder / 'foreign.pem', folder / 'foreign.p12'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                    '-keyout', str(key), '-out', str(cert), '-subj', '/CN=Foreign Person', '-days', '30'],
                   check=True, capture_output=True)
    password = secrets.token_urlsafe(12)
    subprocess.run(['openssl', 'pkcs12', '-export', '-inkey', str(key), '-in', str(cert), '-out', str(p12),
                    '-passout', 'pass:%s' % password], check=True, capture_output=True)
    serial = subprocess.run(['openssl', 'x509', '-noout', '-serial', '-in', str(cert)], check=True,
                            capture_output=True, text=True).stdout.strip().split('=', 1)[1].upper().lstrip('0')
    return p12, password, serial


def _import(db, p12, password: str) -> None:
    subprocess.run(['pk12util', '-i', str(p12), '-d', 'sql:%s' % db, '-W', password, '-K', ''], check=True,
                   capture_output=True)


def test_an_audit_without_drift_changes_nothing(fleet):
    run = fleet['play']('audit')
    assert run.returncode == 0, run.explain()
    recaps = _recaps(run.output)
    assert recaps['h1']['changed'] == 0 and recaps['h2']['changed'] == 0, run.explain()
    assert '"hosts_with_drift": 0' in run.output or "'hosts_with_drift': 0" in run.output, run.explain()
    # A host that is not the first sees its own reconcile call and the skipped second pass, nothing else.
    assert recaps['h2']['ok'] + recaps['h2']['skipped'] == 2, run.explain()


def test_the_audit_repairs_lost_profiles_and_removes_a_revoked_certificate_put_back(fleet):
    alice, carol = _current(fleet, 'alice'), _current(fleet, 'carol')
    old_bob = _current(fleet, 'bob')
    # h1: the Firefox profile is refreshed (a fresh, empty one) and a second profile is created.
    shutil.rmtree(_firefox(fleet, 'h1'))
    _firefox(fleet, 'h1').mkdir()
    _firefox(fleet, 'h1', 'p.second').mkdir()
    (fleet['homes']['h1'] / '.mozilla' / 'firefox' / 'profiles.ini').write_text(TWO_PROFILES_INI)
    # h2: bob is renewed (the old certificate is revoked), then the old one is imported again by hand.
    exported = fleet['base'] / 'old-bob.p12'
    password = secrets.token_urlsafe(12)
    export = fleet['base'] / 'export-old-bob.yml'
    export.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'certfleet.pki.client_certificate_export': {
            'ca_path': fleet['vars']['certfleet_ca_path'], 'ca_passphrase': fleet['vars']['certfleet_ca_passphrase'],
            'serial': old_bob, 'dest': str(exported), 'password': password}}]}]))
    run = fleet['play']('export-old-bob.yml')
    assert run.returncode == 0, run.explain()
    run = fleet['play']('renew', {'certfleet_force_identities': 'bob'})
    assert run.returncode == 0, run.explain()
    new_bob = _current(fleet, 'bob')
    revoked = sqlite_rows(fleet['ca'] / 'state.db', 'SELECT status FROM certificates WHERE serial = ?', (old_bob,))
    assert new_bob != old_bob and revoked == [('revoked',)]
    _import(_firefox(fleet, 'h2'), exported, password)
    foreign_p12, foreign_password, foreign_serial = _foreign_certificate(fleet['base'])
    _import(_firefox(fleet, 'h2'), foreign_p12, foreign_password)
    assert _nss_serials(_firefox(fleet, 'h2')) == {old_bob, new_bob, carol, foreign_serial}

    run = fleet['play']('audit')
    assert run.returncode == 0, run.explain()
    assert _nss_serials(_firefox(fleet, 'h1')) == {alice}
    assert _nss_serials(_firefox(fleet, 'h1', 'p.second')) == {alice}
    assert _nss_serials(fleet['homes']['h1'] / '.local' / 'share' / 'pki' / 'nssdb') == {alice}  # untouched
    assert _nss_serials(_firefox(fleet, 'h2')) == {new_bob, carol, foreign_serial}
    recaps = _recaps(run.output)
    assert recaps['h1']['changed'] > 0 and recaps['h2']['changed'] > 0, run.explain()
    assert "'hosts_with_drift': 2" in run.output or '"hosts_with_drift": 2' in run.output, run.explain()
    left = [p.name for p in fleet['tmp'].iterdir() if p.name.startswith('certfleet-')]
    assert left == [], left  # no PKCS#12 or password file outlives the run
    # The CA store keeps what was found per host, and the report shows it in its drift column and counts.
    kept = {host: (json.loads(summary), json.loads(findings)) for host, summary, findings in sqlite_rows(
        fleet['ca'] / 'state.db', 'SELECT host, summary, findings FROM host_audits')}
    assert kept['h1'][0]['restored'] == 2 and kept['h1'][0]['drift'] is True
    assert sorted((f['kind'], f.get('identity'), f.get('outcome')) for f in kept['h1'][1]) == [
        ('missing', 'alice', 'restored')] * 2
    assert [(f['kind'], f['serial']) for f in kept['h2'][1]] == [('revoked_installed', old_bob)]
    report = fleet['play']('report')
    assert report.returncode == 0, report.explain()
    rows = {row['serial']: row for row in csv.DictReader(io.StringIO(
        (pathlib.Path(str(fleet['ca']) + '-reports') / 'certificates.csv').read_text()))}
    assert rows[old_bob]['drift'].startswith('h2 firefox')
    assert 'revoked copy installed, removed' in rows[old_bob]['drift']
    assert rows[alice]['drift'].count('missing, restored') == 2 and rows[carol]['drift'] == ''
    html = (pathlib.Path(str(fleet['ca']) + '-reports') / 'certificates.html').read_text()
    assert '2 of 2 audited hosts had drift' in ' '.join(html.split())

    again = fleet['play']('audit')
    assert again.returncode == 0, again.explain()
    recaps = _recaps(again.output)
    assert recaps['h1']['changed'] == 0 and recaps['h2']['changed'] == 0, again.explain()
    assert _nss_serials(_firefox(fleet, 'h2')) == {new_bob, carol, foreign_serial}


def test_headless_firefox_authenticates_from_both_repaired_profiles(fleet):
    """The state the repair left (the test above): Firefox presents alice's current certificate from each profile."""
    require_tools('nginx', 'firefox-esr')
    alice = normalize_serial(_current(fleet, 'alice'))
    crl = pathlib.Path(fleet['vars']['certfleet_crl_dest'])  # published by the renewal that revoked bob's old one
    server = MtlsServer(fleet['base'] / 'nginx', fleet['ca'] / 'ca.pem', crl)
    server.start()
    try:
        for name in ('p.default', 'p.second'):
            profile = _firefox(fleet, 'h1', name)
            assert 'Select Automatically' in (profile / 'user.js').read_text()  # set by the audit's repair
            trust_server_ca(profile, server.pki['ca'])  # the test server's CA; the collection manages only ours
            with open(profile / 'prefs.js', 'a', encoding='utf-8') as prefs:  # keep Firefox off the network
                prefs.writelines('user_pref(%s, %s);\n' % (json.dumps(key), json.dumps(value))
                                 for key, value in QUIET_FIREFOX_PREFS.items())
            seen = len(server.entries())
            code = firefox_visit(fleet['homes']['h1'], profile, server.url, fleet['base'] / ('%s.png' % name))
            visits = [(e['status'], e['verify'], e['serial']) for e in server.entries()[seen:] if 'Firefox' in e['ua']]
            # Every request of this visit (the page, maybe a favicon) carried alice's current certificate.
            assert visits and set(visits) == {(200, 'SUCCESS', alice)}, (name, code, server.log.read_text())
            assert code == 0, (name, code)
    finally:
        server.stop()


def test_the_audit_in_check_mode_reports_drift_and_changes_nothing(fleet):
    shutil.rmtree(_firefox(fleet, 'h1', 'p.second'))
    _firefox(fleet, 'h1', 'p.second').mkdir()
    before = sorted(p.name for p in _firefox(fleet, 'h1', 'p.second').iterdir())
    run = fleet['play']('audit', args=('--check',))
    assert run.returncode == 0, run.explain()
    assert sorted(p.name for p in _firefox(fleet, 'h1', 'p.second').iterdir()) == before
    assert "'missing': 1" in run.output or '"missing": 1' in run.output, run.explain()


def test_the_nightly_renew_audits_only_when_asked(fleet):
    alice = _current(fleet, 'alice')
    run = fleet['play']('renew')  # nothing due; the audit is off by default
    assert run.returncode == 0, run.explain()
    second = _firefox(fleet, 'h1', 'p.second')
    assert not (second / 'cert9.db').exists()  # the emptied profile stays empty
    run = fleet['play']('renew', {'certfleet_audit': True})
    assert run.returncode == 0, run.explain()
    assert _nss_serials(_firefox(fleet, 'h1', 'p.second')) == {alice}
    assert _current(fleet, 'alice') == alice  # the audit issues nothing
