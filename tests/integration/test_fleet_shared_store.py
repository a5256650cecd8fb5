# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet playbooks with the whole CA in PostgreSQL (certfleet_ca_store, no certfleet_ca_path): issue deploys,
a forced renewal replaces and revokes the old certificate everywhere, revoke takes an identity out; checked from the
database, the NSS databases and the CRL, with the store's password nowhere in the output."""

from __future__ import annotations

import json
import pathlib
import secrets
import shutil
import subprocess
import sys

import pytest
from integration_support import AnsibleRunner
from postgresql_server import PASSWORD, PASSWORD_ROLE, PostgreSQLServer, why_unavailable
from test_fleet_playbooks import PROFILES_INI, _entry, _nss_serials

pytestmark = [
    pytest.mark.skipif(not all(shutil.which(tool) for tool in ('certutil', 'pk12util', 'openssl')),
                       reason='needs certutil, pk12util (libnss3-tools) and openssl'),
    pytest.mark.skipif(why_unavailable() is not None, reason=why_unavailable() or ''),
]


@pytest.fixture(scope='module')
def shared_fleet(tmp_path_factory, collections_path):
    server = PostgreSQLServer().start()
    try:
        yield _fleet(server, tmp_path_factory.mktemp('shared-fleet'))
    finally:
        server.stop()


def _fleet(server, base) -> dict:
    dbname = server.create_database()
    ansible = AnsibleRunner(base / 'ansible')
    homes = {}
    for host in ('h1', 'h2'):
        home = base / 'homes' / host
        (home / '.mozilla' / 'firefox' / 'p.default').mkdir(parents=True)
        (home / '.mozilla' / 'firefox' / 'profiles.ini').write_text(PROFILES_INI)
        homes[host] = home
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    group_vars = {'certfleet_ca_store': server.url(dbname, PASSWORD_ROLE, PASSWORD),
                  'certfleet_ca_passphrase': secrets.token_urlsafe(24), 'certfleet_crl_dest': str(base / 'crl.pem')}
    hosts = {'h1': dict(local, certfleet_identities=[_entry('alice', homes['h1'], ['firefox'])]),
             'h2': dict(local, certfleet_identities=[_entry('bob', homes['h2'], ['firefox'])])}
    inventory = base / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {'vars': group_vars, 'hosts': hosts}}))
    mkca = base / 'mkca.yml'
    mkca.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'certfleet.pki.ca': {'ca_store': group_vars['certfleet_ca_store'],
                             'ca_passphrase': group_vars['certfleet_ca_passphrase'],
                             'subject': {'CN': 'Shared Fleet CA'}, 'key_type': 'ec-p256'}}]}]))

    def play(name: str, extra_vars: dict | None = None):
        target = mkca if name == 'mkca' else pathlib.Path('certfleet.pki.%s' % name)
        run = ansible.run(target, extra_vars=extra_vars, inventory=inventory)
        assert PASSWORD not in run.stdout + run.stderr
        return run

    def rows(sql: str) -> list:
        with server.admin(dbname) as conn:
            return conn.execute(sql).fetchall()

    return {'play': play, 'rows': rows, 'homes': homes, 'base': base}


def _profile(fleet, host):
    return fleet['homes'][host] / '.mozilla' / 'firefox' / 'p.default'


def _current(fleet) -> dict:
    return dict(fleet['rows']('SELECT identity, serial FROM certfleet.certificates WHERE is_current'))


def test_issue_renew_and_revoke_with_the_ca_in_postgresql(shared_fleet):
    fleet = shared_fleet
    for name in ('mkca', 'issue'):
        run = fleet['play'](name)
        assert run.returncode == 0, run.explain()
    issued = _current(fleet)
    assert sorted(issued) == ['alice', 'bob']
    assert _nss_serials(_profile(fleet, 'h1')) == {issued['alice']}
    assert _nss_serials(_profile(fleet, 'h2')) == {issued['bob']}
    deployed = sorted(fleet['rows']('SELECT identity, host FROM certfleet.deployments'))
    assert deployed == [('alice', 'h1'), ('bob', 'h2')]

    run = fleet['play']('renew', {'certfleet_force_identities': 'alice'})
    assert run.returncode == 0, run.explain()
    renewed = _current(fleet)
    assert renewed['alice'] != issued['alice'] and renewed['bob'] == issued['bob']
    assert _nss_serials(_profile(fleet, 'h1')) == {renewed['alice']}  # the old one left once the new one was in
    old = fleet['rows']("SELECT status FROM certfleet.certificates WHERE serial = '%s'" % issued['alice'])
    assert old == [('revoked',)]

    run = fleet['play']('revoke', {'certfleet_revoke_identity': 'bob', 'certfleet_revoke_reason': 'key_compromise'})
    assert run.returncode == 0, run.explain()
    assert _nss_serials(_profile(fleet, 'h2')) == set()
    crl = subprocess.run(['openssl', 'crl', '-in', str(fleet['base'] / 'crl.pem'), '-noout', '-text'],
                         capture_output=True, text=True, check=True).stdout
    for serial in (issued['alice'], issued['bob']):
        padded = serial if len(serial) % 2 == 0 else '0' + serial
        assert 'Serial Number: %s' % padded in crl
    assert renewed['alice'] not in crl
