# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Across nodes (issue 11): 50 processes, each with its own working folder, TMPDIR and HOME and nothing else shared
but the CA's store (the database URL for PostgreSQL; the CA directory for SQLite, which is one host), run a seeded
random mix of issue, forced renewal, revocation and CRL publication on overlapping identities while the test
SIGKILLs about a third of them: some at random moments, some inside a write transaction (lock held, statements
run, nothing committed). Afterwards, read from the store directly: no duplicate serial, at most one current
certificate per identity, renewal links and the audit log consistent, every acknowledged operation kept, CRL
numbers strictly increasing, a final CRL that lists exactly the revoked serials, and an intact store.

The workers are forked from a preloaded multiprocessing fork server: separate processes that share no open file,
connection or folder with each other or with the test, without paying 50 times for the imports.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import sys
import time

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca import crl as crl_lib
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca

from conftest import CA_SUBJECT, PASSPHRASE  # pylint: disable=import-error

try:
    from cryptography import x509
except ImportError:
    pass

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 50
OPS_PER_WORKER = 6
IDENTITIES = ['node-user%d@example.org' % n for n in range(8)]
KILLED_IN_WRITE = 9   # workers stopped inside a write transaction (lock held), then killed
KILLED_AT_RANDOM = 9  # workers killed a random moment after one of their acknowledgements
SEED = 20261130
DEADLINE_SECONDS = 600  # a hung run fails instead of hanging the suite (not a time budget)


# -- the plan ----------------------------------------------------------------------------------------------------

def _plans(rng: random.Random) -> list:
    plans = []
    for _worker in range(WORKERS):
        ops = []
        for _op in range(OPS_PER_WORKER):
            kind = rng.choices(['ensure', 'renew', 'revoke', 'publish_crl'], weights=[3, 3, 3, 2])[0]
            op = {'kind': kind}
            if kind == 'publish_crl':
                op['dest'] = 'ca.crl'  # relative: in the node's own working folder
            else:
                op['identity'] = rng.choice(IDENTITIES)
            if kind == 'revoke':
                op['which'] = rng.choice(['superseded', 'superseded', 'current'])
                op['reason'] = rng.choice(['superseded', 'key_compromise', 'cessation_of_operation'])
            ops.append(op)
        plans.append({'ops': ops})
    victims = rng.sample(range(WORKERS), KILLED_IN_WRITE + KILLED_AT_RANDOM)
    for number in victims[:KILLED_IN_WRITE]:
        ops = plans[number]['ops']
        start = rng.randrange(OPS_PER_WORKER - 1)
        # a forced renewal always writes: the worker reaches its held write at the latest there
        ops[start] = {'kind': 'renew', 'identity': rng.choice(IDENTITIES)}
        plans[number]['hold_in_write'] = {'from_op': start, 'phase': rng.choice(['begun', 'before_commit',
                                                                                 'before_commit'])}
    for number in victims[KILLED_IN_WRITE:]:
        # killed 0-120 ms after one of its acknowledgements (or right after the start): mid-operation, anywhere
        plans[number]['kill_after_acks'] = rng.randrange(OPS_PER_WORKER - 1)
        plans[number]['kill_delay'] = rng.uniform(0, 0.12)
    return plans


# -- running the nodes -------------------------------------------------------------------------------------------

class Node:
    def __init__(self, number: int, plan: dict, folder: str):
        self.number = number
        self.plan = plan
        self.folder = folder
        self.process = None
        self.conn = None
        self.messages = []
        self.kill_at = None
        self.killed = False
        self.ended = False

    def acks(self) -> list:
        return [m for m in self.messages if m['event'] == 'ack']


def _context(monkeypatch):
    context = multiprocessing.get_context('forkserver')
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    # The fork server starts with this environment; Python 3.11's ignores the sys.path it is handed, and without
    # PYTHONPATH its preload fails quietly and every worker pays the imports.
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(p for p in sys.path if p))
    context.set_forkserver_preload(['ansible_collections.certfleet.pki.plugins.module_utils.ca.service',
                                    'cross_node_worker', 'psycopg'])
    return context


def _start(context, node: Node, job: dict) -> None:
    import cross_node_worker  # pylint: disable=import-error,import-outside-toplevel
    for sub in ('home', 'tmp'):
        os.makedirs(os.path.join(node.folder, sub))
    parent, child = context.Pipe()
    job = dict(job, folder=node.folder, ops=node.plan['ops'], hold_in_write=node.plan.get('hold_in_write'))
    node.process = context.Process(target=cross_node_worker.serve, args=(json.dumps(job), child), daemon=True)
    node.process.start()
    child.close()
    node.conn = parent


def _receive(node: Node) -> None:
    """Take every message the node sent; mark it ended at end of file (finished or killed)."""
    while not node.ended and node.conn.poll():
        try:
            data = node.conn.recv_bytes()
        except (EOFError, OSError):
            node.ended = True
            break
        try:
            message = json.loads(data)
        except ValueError:  # a message cut by the kill: never acknowledged
            continue
        node.messages.append(message)
        if message['event'] == 'in_write':
            _kill(node)
        elif (message['event'] == 'ack' and 'kill_after_acks' in node.plan
              and node.kill_at is None and len(node.acks()) == node.plan['kill_after_acks']):
            node.kill_at = time.monotonic() + node.plan['kill_delay']


def _kill(node: Node) -> None:
    if node.process.exitcode is None and not node.killed:
        node.process.kill()
        node.killed = True


def _run_nodes(job: dict, nodes: list, monkeypatch) -> None:
    context = _context(monkeypatch)
    try:
        for node in nodes:
            _start(context, node, job)
        for node in nodes:  # everyone forked, in its folder and waiting: go
            message = json.loads(node.conn.recv_bytes())
            assert message['event'] == 'ready', message
        for node in nodes:
            node.conn.send_bytes(b'go')
            if node.plan.get('kill_after_acks') == 0:
                node.kill_at = time.monotonic() + node.plan['kill_delay']
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not all(n.ended for n in nodes):
            assert time.monotonic() < deadline, 'the nodes did not finish'
            now = time.monotonic()
            for node in nodes:
                if node.kill_at is not None and now >= node.kill_at and not node.ended:
                    _kill(node)
                    node.kill_at = None
            pending = [n.kill_at - now for n in nodes if n.kill_at is not None and not n.ended]
            timeout = max(0.0, min(pending + [0.5]))
            ready = multiprocessing.connection.wait([n.conn for n in nodes if not n.ended], timeout)
            for node in nodes:
                if node.conn in ready:
                    _receive(node)
        for node in nodes:
            node.process.join(30)
            assert node.process.exitcode in ((0, -signal.SIGKILL) if node.killed else (0,)), node.number
            node.killed = node.process.exitcode == -signal.SIGKILL  # a kill sent as it exited did not count
    finally:
        for node in nodes:
            if node.process is not None and node.process.exitcode is None:
                node.process.kill()
                node.process.join(30)
            if node.conn is not None:
                node.conn.close()


# -- the backends ------------------------------------------------------------------------------------------------

def _sqlite_ca(tmp_path, request) -> dict:
    path = str(tmp_path / 'ca')
    ensure_ca(ca_path=path, ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT), key_type='ec-p256', valid_days=3650)
    return {'backend': 'sqlite', 'ca_path': path, 'passphrase': PASSPHRASE}


def _postgresql_ca(tmp_path, request) -> dict:
    from postgresql_server import PASSWORD, PASSWORD_ROLE  # pylint: disable=import-error,import-outside-toplevel
    server = request.getfixturevalue('postgresql_server')
    url = server.url(request.getfixturevalue('postgresql_database'), user=PASSWORD_ROLE, password=PASSWORD)
    ensure_ca(store_url=url, ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT), key_type='ec-p256',
              valid_days=3650)
    return {'backend': 'postgresql', 'store_url': url, 'passphrase': PASSPHRASE}


def _open(job: dict) -> ManagedCA:
    return ManagedCA(job.get('ca_path'), job['passphrase'], store_url=job.get('store_url'))


def _ensure(job: dict, identity: str) -> dict:
    with _open(job) as ca:
        return ca.ensure_certificate(ca.build_wanted(identity=identity, subject={'CN': identity},
                                                     key_type='ec-p256'))


# -- the test ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', ['sqlite', 'postgresql'])
def test_fifty_nodes_with_kills_keep_the_ca_consistent(backend, tmp_path, request, monkeypatch):
    job = (_sqlite_ca if backend == 'sqlite' else _postgresql_ca)(tmp_path, request)
    for identity in IDENTITIES:  # every identity has a history, so every revocation finds records
        _ensure(job, identity)
    plans = _plans(random.Random(SEED))
    nodes = [Node(number, plan, str(tmp_path / ('node%02d' % number))) for number, plan in enumerate(plans)]

    _run_nodes(job, nodes, monkeypatch)

    errors = [m for n in nodes for m in n.messages if m['event'] == 'error']
    assert errors == []
    killed = [n for n in nodes if n.killed]
    held = [n for n in nodes if any(m['event'] == 'in_write' for m in n.messages)]
    assert len(killed) >= 15 and len(held) == KILLED_IN_WRITE, (len(killed), len(held))
    assert all(n.killed for n in held)
    acks = [m for n in nodes for m in n.acks()]
    kinds = collections.Counter(m['op']['kind'] for m in acks)
    assert all(kinds[k] >= 20 for k in ('ensure', 'renew', 'revoke', 'publish_crl')), kinds

    with _open(job) as ca, ca.store.read():
        ca.store.check_integrity()
        records = ca.store.find()
        audit = ca.store.audit_entries()
        revoked_entries = ca.store.revoked_entries()
    by_serial = {r.serial: r for r in records}

    _check_certificates(records, by_serial)
    _check_audit(audit, by_serial)
    _check_acknowledged(acks, by_serial, audit)
    _check_crl_numbers(nodes, acks, audit)
    assert sorted(e.serial for e in revoked_entries) == sorted(s for s, r in by_serial.items()
                                                               if r.status == 'revoked')

    # the nodes left no lock behind: the test can write, and every identity ends with one current certificate
    for identity in IDENTITIES:
        _ensure(job, identity)
    with _open(job) as ca:
        final = ca.publish_crl(next_update_days=8)  # a new next_update_days: always a new CRL
        with ca.store.read():
            ca.store.check_integrity()
            records = ca.store.find()
            revoked = {e.serial for e in ca.store.revoked_entries()}
            last_audit = ca.store.audit_entries()[-1]
        crl = x509.load_der_x509_crl(ca.directory.read('crl.der'))
        assert crl.is_signature_valid(ca.authority.certificate.public_key())
    assert all(sum(r.is_current for r in records if r.identity == i) == 1 for i in IDENTITIES)
    published = [e['detail']['crl_number'] for e in audit if e['action'] == 'crl_publish']
    assert final['regenerated'] is True and final['crl_number'] > max(published)
    assert last_audit['action'] == 'crl_publish' and last_audit['detail']['crl_number'] == final['crl_number']
    assert crl_lib.crl_number(crl) == final['crl_number']
    assert crl_lib.crl_serials(crl) == revoked == {r.serial for r in records if r.status == 'revoked'}
    assert final['revoked_count'] == len(revoked)


def _check_certificates(records: list, by_serial: dict) -> None:
    assert len(by_serial) == len(records), 'duplicate serial'
    assert len({r.fingerprint_sha256 for r in records}) == len(records)
    current = collections.Counter(r.identity for r in records if r.is_current)
    assert all(count == 1 for count in current.values()), current
    assert set(r.identity for r in records) == set(IDENTITIES)
    for record in records:
        if record.renews is not None:
            previous = by_serial[record.renews]
            assert previous.renewed_by == record.serial and previous.identity == record.identity, record.serial
        if record.renewed_by is not None:
            follower = by_serial[record.renewed_by]
            assert follower.renews == record.serial, record.serial
            assert not record.is_current, record.serial  # a superseded certificate is not current
        assert record.pending_revocation == (record.renewed_by is not None and record.status == 'valid'), \
            record.serial
        if record.status == 'revoked':
            assert not record.is_current and record.revoked_at is not None and record.revocation_reason


def _check_audit(audit: list, by_serial: dict) -> None:
    """One issue or renew entry per certificate and one revoke entry per revoked one, naming its serial; replayed in
    commit order, the log describes the store."""
    issuing = collections.Counter(e['serials'][0] for e in audit if e['action'] in ('issue', 'renew'))
    assert issuing == collections.Counter(list(by_serial)), 'issue audit entries != certificates'
    revoking = collections.Counter(e['serials'][0] for e in audit if e['action'] == 'revoke')
    assert revoking == collections.Counter(s for s, r in by_serial.items() if r.status == 'revoked')
    current = {}
    for entry in audit:
        identity, serials = entry['identity'], entry['serials']
        if entry['action'] in ('issue', 'renew'):
            record = by_serial[serials[0]]
            assert record.identity == identity, entry
            assert entry['detail']['previous_serial'] == record.renews, entry
        if entry['action'] == 'issue':
            assert len(serials) == 1 and current.get(identity) is None, entry
            current[identity] = serials[0]
        elif entry['action'] == 'renew':
            new, old = serials
            assert current.get(identity) == old, entry  # renewed what was current at that moment
            current[identity] = new
        elif entry['action'] == 'revoke':
            (serial,) = serials
            assert by_serial[serial].identity == identity and by_serial[serial].status == 'revoked'
            assert by_serial[serial].revocation_reason == entry['detail']['reason']
            if entry['detail']['was_current']:
                assert current.get(identity) == serial, entry
                current[identity] = None
            else:
                assert current.get(identity) != serial, entry
    for identity in IDENTITIES:
        assert [s for s, r in by_serial.items() if r.identity == identity and r.is_current] == \
            ([current[identity]] if current.get(identity) else []), identity


def _check_acknowledged(acks: list, by_serial: dict, audit: list) -> None:
    """No acknowledged operation lost, none reported twice."""
    new_serials = []
    for ack in acks:
        op, result = ack['op'], ack['result']
        if op['kind'] in ('ensure', 'renew'):
            record = by_serial.get(result['serial'])
            assert record is not None and record.identity == op['identity'], ack
            if op['kind'] == 'renew':
                assert result['action'] in ('issued', 'renewed'), ack
            if result['action'] in ('issued', 'renewed'):
                new_serials.append(result['serial'])
                assert record.renews == result['previous_serial'], ack
        elif op['kind'] == 'revoke':
            for serial in result['revoked']:
                assert by_serial[serial].status == 'revoked' and by_serial[serial].identity == op['identity'], ack
    assert len(new_serials) == len(set(new_serials)), 'two acknowledgements for one new certificate'
    revoked = [s for ack in acks if ack['op']['kind'] == 'revoke' for s in ack['result']['revoked']]
    assert len(revoked) == len(set(revoked)), 'one certificate revoked twice'
    audit_revoked = {e['serials'][0] for e in audit if e['action'] == 'revoke'}
    assert set(revoked) <= audit_revoked


def _check_crl_numbers(nodes: list, acks: list, audit: list) -> None:
    published = [e['detail']['crl_number'] for e in audit if e['action'] == 'crl_publish']
    assert published == sorted(set(published)), 'CRL numbers not strictly increasing in commit order'
    publishes = [a for a in acks if a['op']['kind'] == 'publish_crl']
    for ack in publishes:
        if ack['result']['regenerated']:
            assert ack['result']['crl_number'] in published, ack
        assert ack['result']['crl_number'] <= published[-1], ack
    # in real time: a publication that started after another one was acknowledged never numbers lower
    for first in publishes:
        for later in publishes:
            if first['t1'] < later['t0']:
                assert later['result']['crl_number'] >= first['result']['crl_number'], (first, later)
                if later['result']['regenerated']:
                    assert later['result']['crl_number'] > first['result']['crl_number'], (first, later)
    # a node that was not killed holds, in its own folder, the CRL its last publication acknowledged
    for node in nodes:
        mine = [a for a in node.acks() if a['op']['kind'] == 'publish_crl']
        if mine and not node.killed:
            with open(os.path.join(node.folder, 'ca.crl'), 'rb') as handle:
                copy = x509.load_der_x509_crl(handle.read())
            assert crl_lib.crl_number(copy) == mine[-1]['result']['crl_number'], node.number
