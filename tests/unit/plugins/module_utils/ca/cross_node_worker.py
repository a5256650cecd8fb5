# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One "execution node" of the cross-node test: a process with its own working folder, run until done or killed.

The job is one JSON object: ``backend`` (sqlite or postgresql), ``ca_path`` or ``store_url``, ``passphrase``,
``folder`` (the node's working folder: its cwd, TMPDIR and HOME, and where its CRL copy goes), ``ops`` and
optionally ``hold_in_write`` (``{"from_op": N, "phase": "begun" | "before_commit"}``: from operation N on, the first
write transaction stops there, says so and waits to be killed).

Each operation opens the CA afresh, as a module run on a node does, and one JSON line is emitted only after it
returned: that is an acknowledged operation. Lines: ``{"event": "ready"}``, then after ``go``
``{"event": "ack", "index", "op", "result", "t0", "t1"}`` (wall-clock times, comparable between the processes of
one host) or ``{"event": "error", ...}``; ``{"event": "in_write", "index", "phase"}`` when holding a write
transaction to be killed in it; ``{"event": "done"}`` at the end.

The test forks these workers from a preloaded fork server (``work``, lines sent over a pipe) so that 50 of them
do not each pay the imports; ``python cross_node_worker.py < job.json`` runs one by hand, lines on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import traceback

from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA

HOLD_SECONDS = 60  # a worker told to hold a write waits this long for its SIGKILL, then goes on (the test fails)


def _open(job: dict) -> ManagedCA:
    if job['backend'] == 'postgresql':
        return ManagedCA(None, job['passphrase'], store_url=job['store_url'])
    return ManagedCA(job['ca_path'], job['passphrase'])


class _Holder:
    """Wraps the opened store's ``write`` so that one chosen write transaction stops (lock held) to be killed."""

    def __init__(self, job: dict, emit):
        self.hold = job.get('hold_in_write')
        self.emit = emit
        self.index = -1

    def armed(self) -> bool:
        return self.hold is not None and self.index >= self.hold['from_op']

    def wrap(self, store) -> None:
        original = store.write

        @contextlib.contextmanager
        def write():
            with original() as inside:
                if self.armed() and self.hold['phase'] == 'begun':
                    self._wait()
                yield inside
                if self.armed():  # every statement ran, nothing is committed yet
                    self._wait()

        store.write = write

    def _wait(self) -> None:
        self.emit({'event': 'in_write', 'index': self.index, 'phase': self.hold['phase']})
        time.sleep(HOLD_SECONDS)
        self.hold = None


def run_op(ca: ManagedCA, op: dict) -> dict:
    kind = op['kind']
    if kind in ('ensure', 'renew'):
        wanted = ca.build_wanted(identity=op['identity'], subject={'CN': op['identity']}, key_type='ec-p256',
                                 force=kind == 'renew')
        result = ca.ensure_certificate(wanted)
        return {'action': result['action'], 'serial': result['serial'], 'previous_serial': result['previous_serial']}
    if kind == 'revoke':
        result = ca.revoke(identity=op['identity'], which=op['which'], reason=op['reason'])
        return {'revoked': result['revoked']}
    result = ca.publish_crl(dest=op['dest'], format='der')
    return {'crl_number': result['crl_number'], 'regenerated': result['regenerated'],
            'revoked_count': result['revoked_count']}


def work(job: dict, emit, wait_for_go) -> None:
    """Become the node (folder, environment), wait for the start, then run every operation of ``job``."""
    folder = job['folder']
    os.chdir(folder)
    os.environ.update(HOME=os.path.join(folder, 'home'), TMPDIR=os.path.join(folder, 'tmp'))
    tempfile.tempdir = None  # tempfile re-reads TMPDIR
    holder = _Holder(job, emit)
    emit({'event': 'ready', 'pid': os.getpid()})
    wait_for_go()
    for index, op in enumerate(job['ops']):
        holder.index = index
        t0 = time.time()
        try:
            with _open(job) as ca:
                holder.wrap(ca.store)
                result = run_op(ca, op)
        except Exception as exc:  # reported to the parent, which fails the test
            emit({'event': 'error', 'index': index, 'op': op, 'error': '%s: %s' % (type(exc).__name__, exc),
                  'traceback': traceback.format_exc()})
            continue
        emit({'event': 'ack', 'index': index, 'op': op, 'result': result, 't0': t0, 't1': time.time()})
    emit({'event': 'done'})


def serve(job_json: str, conn) -> None:
    """Entry point in a forked worker: the job as JSON text, ``conn`` the worker's end of a duplex pipe."""
    def emit(message: dict) -> None:
        conn.send_bytes(json.dumps(message).encode('utf-8'))

    def wait_for_go() -> None:
        if conn.recv_bytes() != b'go':
            raise SystemExit(3)

    work(json.loads(job_json), emit, wait_for_go)
    conn.close()


def main() -> int:
    job = json.loads(sys.stdin.readline())

    def emit(message: dict) -> None:
        print(json.dumps(message), flush=True)

    work(job, emit, lambda: None)
    return 0


if __name__ == '__main__':
    sys.exit(main())
