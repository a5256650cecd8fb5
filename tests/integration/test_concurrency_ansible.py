# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Twenty Ansible forks against one CA directory, through the modules; then the store is audited with sqlite3.

Every host creates the CA (one creates it), issues its own identity and a shared one, renews both with force, and
revokes what is superseded. Afterwards the store must hold exactly what was done: no lost or duplicated record, one
current certificate per identity, one unbroken renewal chain for the shared identity, and every superseded
certificate revoked exactly once.
"""

from __future__ import annotations

import collections
import json
import re

from integration_support import sqlite_rows

HOSTS = ['host%d' % number for number in range(1, 21)]

PLAYBOOK = '''---
- name: Twenty hosts, one CA
  hosts: all
  gather_facts: false
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: "{{ ca_dir }}"
      ca_passphrase: concurrency-ca-passphrase
  tasks:
    - name: The CA exists (every host asks at once)
      certfleet.pki.ca:
        subject: {CN: Concurrency CA}
        key_type: ec-p256
      register: ca

    - name: The host's own identity has a certificate
      certfleet.pki.client_certificate:
        identity: "{{ inventory_hostname }}"
        subject: {CN: "{{ inventory_hostname }}"}
        key_type: ec-p256
      register: own

    - name: The shared identity has a certificate
      certfleet.pki.client_certificate:
        identity: shared
        subject: {CN: shared}
        key_type: ec-p256
      register: shared

    - name: The host's own certificate is renewed
      certfleet.pki.client_certificate:
        identity: "{{ inventory_hostname }}"
        subject: {CN: "{{ inventory_hostname }}"}
        key_type: ec-p256
        force: true
      register: own_renewed

    - name: The shared certificate is renewed
      certfleet.pki.client_certificate:
        identity: shared
        subject: {CN: shared}
        key_type: ec-p256
        force: true
      register: shared_renewed

    - name: The host's superseded certificate is revoked
      certfleet.pki.client_certificate_revoke:
        identity: "{{ inventory_hostname }}"
        which: superseded
        reason: superseded
      register: own_revoked

    - name: The shared identity's superseded certificates are revoked
      certfleet.pki.client_certificate_revoke:
        identity: shared
        which: superseded
        reason: superseded
      register: shared_revoked

    - name: What this host saw
      ansible.builtin.copy:
        content: "{{ {'ca': ca.action, 'own': [own.action, own.serial], 'shared': [shared.action, shared.serial],
                      'own_renewed': [own_renewed.action, own_renewed.serial, own_renewed.previous_serial],
                      'shared_renewed': [shared_renewed.action, shared_renewed.serial, shared_renewed.previous_serial],
                      'own_revoked': own_revoked.revoked, 'shared_revoked': shared_revoked.revoked} | to_json }}"
        dest: "{{ results_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
'''


def test_twenty_forks_against_one_ca(ansible, work_dir):
    ca_dir = work_dir / 'ca'
    results_dir = work_dir / 'results'
    results_dir.mkdir()
    inventory = ansible.inventory(HOSTS, name='fleet.ini')
    playbook = ansible.base / 'fleet.yml'
    playbook.write_text(PLAYBOOK)
    run = ansible.run(playbook, inventory=inventory, args=['--forks', '20'],
                      extra_vars={'ca_dir': str(ca_dir), 'results_dir': str(results_dir)})
    assert run.returncode == 0, run.explain()
    recaps = dict(re.findall(r'^(host\d+)\s+:\s+(ok=.*)$', run.stdout, re.MULTILINE))
    assert sorted(recaps) == sorted(HOSTS), run.explain()
    for host, line in recaps.items():
        assert 'failed=0' in line and 'unreachable=0' in line, '%s: %s' % (host, line)
    assert 'database is locked' not in run.output

    seen = {host: json.loads((results_dir / ('%s.json' % host)).read_text()) for host in HOSTS}
    db = ca_dir / 'state.db'
    certificates = sqlite_rows(db, 'SELECT serial, identity, status, is_current, pending_revocation, renews, '
                                   'renewed_by, fingerprint_sha256, revocation_reason FROM certificates')
    audit = sqlite_rows(db, 'SELECT action, identity, serials, outcome FROM audit ORDER BY id')
    by_serial = {row[0]: row for row in certificates}
    actions = collections.Counter(row[0] for row in audit)

    # One host created the CA, the others found it.
    assert sorted(host['ca'] for host in seen.values()) == ['created'] + ['none'] * 19
    assert actions['ca_created'] == 1

    # Exactly what was done: 20 own issues + 1 shared issue, 20 own renewals + 20 shared renewals.
    shared_issues = [host['shared'] for host in seen.values() if host['shared'][0] == 'issued']
    assert len(shared_issues) == 1
    assert all(host['shared'] == ['none', shared_issues[0][1]] for host in seen.values()
               if host['shared'][0] != 'issued')
    assert all(host['own'][0] == 'issued' and host['own_renewed'][0] == 'renewed' for host in seen.values())
    assert all(host['shared_renewed'][0] == 'renewed' for host in seen.values())
    assert len(certificates) == 20 * 2 + 1 + 20
    assert actions['issue'] == 21 and actions['renew'] == 40
    assert len(certificates) == actions['issue'] + actions['renew']
    issued_in_audit = [json.loads(row[2])[0] for row in audit if row[0] in ('issue', 'renew')]
    assert sorted(issued_in_audit) == sorted(by_serial)

    # No duplicate serials or fingerprints; every serial a host was told about is in the store.
    assert len({row[0] for row in certificates}) == len(certificates)
    assert len({row[7] for row in certificates}) == len(certificates)
    told = set()
    for host in seen.values():
        told.update([host['own'][1], host['shared'][1], host['own_renewed'][1], host['shared_renewed'][1]])
    assert told <= set(by_serial) and len(told) == 1 + 20 * 3

    # Exactly one current certificate per identity, and it is the newest of its renewal chain.
    current = collections.Counter(row[1] for row in certificates if row[3] == 1)
    assert set(current) == set(HOSTS) | {'shared'}
    assert set(current.values()) == {1}
    for row in certificates:
        if row[3] == 1:
            assert row[2] == 'valid' and row[6] is None, row

    # The shared identity's renewals form one unbroken chain: 20 forced renewals, none lost, none forked.
    shared = [row for row in certificates if row[1] == 'shared']
    assert len(shared) == 21
    roots = [row for row in shared if row[5] is None]
    assert len(roots) == 1
    chain = [roots[0][0]]
    while by_serial[chain[-1]][6] is not None:
        chain.append(by_serial[chain[-1]][6])
        assert by_serial[chain[-1]][5] == chain[-2]
    assert len(chain) == 21
    assert sorted(host['shared_renewed'][2] for host in seen.values()) == sorted(chain[:-1])

    # Every superseded certificate was revoked, exactly once, by exactly one host, and nothing else was.
    revoke_entries = [json.loads(row[2]) for row in audit if row[0] == 'revoke']
    revoked_in_audit = [serial for serials in revoke_entries for serial in serials]
    assert len(revoked_in_audit) == len(set(revoked_in_audit)) == 40
    reported = [serial for host in seen.values() for serial in host['own_revoked'] + host['shared_revoked']]
    assert sorted(reported) == sorted(revoked_in_audit)
    for host, result in seen.items():
        assert result['own_revoked'] == [result['own_renewed'][2]], host
    for serial in revoked_in_audit:
        assert by_serial[serial][2] == 'revoked' and by_serial[serial][8] == 'superseded', by_serial[serial]
    revoked_rows = {row[0] for row in certificates if row[2] == 'revoked'}
    assert revoked_rows == set(revoked_in_audit)
    assert revoked_rows == {row[0] for row in certificates if row[6] is not None}
    assert not [row for row in certificates if row[4] == 1]  # no pending revocation is left behind
