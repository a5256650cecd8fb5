# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many processes against one CA directory, as Ansible forks are: nothing lost, duplicated or locked out."""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'concurrency_worker.py')
PROCESSES = 20
OPS_PER_PROCESS = 5
IDENTITIES = ['user%02d@example.org' % n for n in range(8)]


def _run_workers(ca, plans: list) -> list:
    """Start one process per plan, release them together, and return each one's outcomes."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    processes = []
    try:
        for plan in plans:
            process = subprocess.Popen([sys.executable, WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=env)
            process.stdin.write(json.dumps({'ca_path': ca.path, 'passphrase': ca.passphrase, 'ops': plan}) + '\n')
            process.stdin.flush()
            processes.append(process)
        for process in processes:
            line = process.stdout.readline()
            assert line.strip() == 'ready', process.stderr.read()
        for process in processes:  # everyone is imported and waiting: go
            process.stdin.write('go\n')
            process.stdin.flush()
        results = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr
            assert 'database is locked' not in stderr
            results.append(json.loads(stdout))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _errors(results) -> list:
    return [outcome for plan in results for outcome in plan if 'error' in outcome]


def _plans(seed: int) -> list:
    rng = random.Random(seed)
    plans = []
    for _worker in range(PROCESSES):
        plan = []
        for _op in range(OPS_PER_PROCESS):
            identity = rng.choice(IDENTITIES)
            kind = rng.choices(['ensure', 'renew', 'revoke'], weights=[3, 4, 3])[0]
            op = {'kind': kind, 'identity': identity}
            if kind == 'revoke':
                op['which'] = rng.choice(['superseded', 'superseded', 'current', 'all'])
                op['reason'] = rng.choice(['superseded', 'key_compromise', 'cessation_of_operation'])
            plan.append(op)
        plans.append(plan)
    return plans


def test_mixed_operations_from_many_processes(ca):
    for identity in IDENTITIES:  # every identity has a history, so every revoke finds records
        ca.ensure(identity, key_type='ec-p256')
    plans = _plans(seed=20240521)
    kinds = collections.Counter(op['kind'] for plan in plans for op in plan)
    assert len(plans) >= 20 and all(kinds[k] >= 10 for k in ('ensure', 'renew', 'revoke'))

    results = _run_workers(ca, plans)
    assert _errors(results) == []

    audit = ca.audit()
    records = {r.serial: r for r in ca.records()}
    issuing = [e for e in audit if e['action'] in ('issue', 'renew')]
    revokes = [e for e in audit if e['action'] == 'revoke']

    # every certificate row has exactly one issue/renew audit entry, and no serial repeats
    issued_serials = [e['serials'][0] for e in issuing]
    assert len(issued_serials) == len(set(issued_serials))
    assert sorted(issued_serials) == sorted(records)
    assert len(records) == len(issuing)

    # replay the audit log in commit order: it must describe a consistent history
    current = {}
    for entry in audit:
        identity = entry['identity']
        if entry['action'] == 'issue':
            assert current.get(identity) is None, entry
            current[identity] = entry['serials'][0]
        elif entry['action'] == 'renew':
            new, old = entry['serials']
            assert current.get(identity) == old, entry  # renewed what was current at that moment
            assert records[new].renews == old and records[old].renewed_by == new
            current[identity] = new
        elif entry['action'] == 'revoke':
            (serial,) = entry['serials']
            if entry['detail']['was_current']:
                assert current.get(identity) == serial, entry
                current[identity] = None
            else:
                assert current.get(identity) != serial, entry

    # the store agrees with the replay: one current certificate where the log says so, none elsewhere
    for identity in IDENTITIES:
        is_current = [r.serial for r in records.values() if r.identity == identity and r.is_current]
        expected = [current[identity]] if current.get(identity) else []
        assert is_current == expected, identity

    # every revocation in the audit log is in the store, exactly once, with its reason
    revoked_in_log = [e['serials'][0] for e in revokes]
    assert len(revoked_in_log) == len(set(revoked_in_log))
    assert sorted(revoked_in_log) == sorted(s for s, r in records.items() if r.status == 'revoked')
    for entry in revokes:
        record = records[entry['serials'][0]]
        assert record.revocation_reason == entry['detail']['reason']
        assert record.is_current is False and record.pending_revocation is False

    # superseded-but-valid certificates are marked pending revocation, and only those
    for record in records.values():
        superseded = record.renewed_by is not None
        assert record.pending_revocation == (superseded and record.status == 'valid'), record.serial
        if superseded:
            assert not record.is_current

    # what the workers were told matches the log: nothing reported that did not happen, nothing twice
    outcomes = [o for plan in results for o in plan]
    reported_new = [o['serial'] for o in outcomes if o.get('action') in ('issued', 'renewed')]
    reported_revoked = [s for o in outcomes for s in o.get('revoked', [])]
    seeds = len(IDENTITIES)
    assert sorted(reported_new) == sorted(issued_serials[seeds:])
    assert sorted(reported_revoked) == sorted(revoked_in_log)
    for outcome in outcomes:
        if outcome.get('action') == 'renewed':
            assert records[outcome['serial']].renews == outcome['previous_serial']
    renew_outcomes = [o for o in outcomes if o['op']['kind'] == 'renew']
    assert len(renew_outcomes) == sum(o.get('action') in ('issued', 'renewed') for o in renew_outcomes)

    # afterwards every identity can be brought to exactly one current certificate
    for identity in IDENTITIES:
        result = ca.ensure(identity, key_type='ec-p256')
        assert result['action'] == ('none' if current.get(identity) else 'issued')
    assert all(sum(r.is_current for r in ca.records(identity)) == 1 for identity in IDENTITIES)


def test_same_identity_from_many_processes_issues_once(ca):
    results = _run_workers(ca, [[{'kind': 'ensure', 'identity': 'shared'}] for _worker in range(PROCESSES)])
    assert _errors(results) == []
    outcomes = [plan[0] for plan in results]
    actions = collections.Counter(o['action'] for o in outcomes)
    assert actions == {'issued': 1, 'none': PROCESSES - 1}
    assert len({o['serial'] for o in outcomes}) == 1
    records = ca.records('shared')
    assert len(records) == 1 and records[0].is_current and records[0].serial == outcomes[0]['serial']
    assert [e['action'] for e in ca.audit() if e['identity'] == 'shared'] == ['issue']


def test_concurrent_forced_renewals_of_one_identity_form_a_chain(ca):
    first = ca.ensure('chain')['serial']
    results = _run_workers(ca, [[{'kind': 'renew', 'identity': 'chain'}] for _worker in range(PROCESSES)])
    assert _errors(results) == []
    records = {r.serial: r for r in ca.records('chain')}
    assert len(records) == PROCESSES + 1
    # a single linked list from the first certificate to the one current certificate
    serial, seen = first, [first]
    while records[serial].renewed_by:
        serial = records[serial].renewed_by
        seen.append(serial)
    assert sorted(seen) == sorted(records)
    assert [s for s, r in records.items() if r.is_current] == [serial]
    assert sum(r.pending_revocation for r in records.values()) == PROCESSES
    revoked = ca.revoke(identity='chain', which='superseded')['revoked']
    assert len(revoked) == PROCESSES and serial not in revoked
    assert ca.revoke(identity='chain', which='current')['revoked'] == [serial]
