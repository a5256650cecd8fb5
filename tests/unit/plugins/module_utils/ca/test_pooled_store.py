# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL store behind PgBouncer in session mode, as docs/awx.md advises for many short module runs: every
operation works, server sessions are really reused, and nothing one run leaves in its session (an advisory lock, an
open transaction of a killed run) reaches the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.store.postgresql import EXCLUSIVE_LOCK_KEY

from conftest import CA_SUBJECT, CAHarness, PASSPHRASE  # pylint: disable=import-error


@pytest.fixture(scope='module')
def pgbouncer(postgresql_server):
    from pgbouncer_server import PgBouncer, pgbouncer_unavailable  # pylint: disable=import-error
    reason = pgbouncer_unavailable()
    if reason:
        pytest.skip(reason)
    bouncer = PgBouncer(postgresql_server).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def pooled_url(pgbouncer, postgresql_database):
    return pgbouncer.url(postgresql_database)


def _backend_pid(url: str) -> int:
    import psycopg  # pylint: disable=import-outside-toplevel
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute('SELECT pg_backend_pid()').fetchone()[0]


def _harness(url, clock) -> CAHarness:
    created = ensure_ca(store_url=url, ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT), key_type='ec-p256',
                        clock=clock)
    return CAHarness(None, PASSPHRASE, clock, created, store_url=url)


def test_the_lifecycle_runs_through_the_pooler_on_one_reused_server_session(pooled_url, clock, tmp_path):
    before = _backend_pid(pooled_url)
    ca = _harness(pooled_url, clock)
    issued = ca.ensure('alice')
    assert issued['changed'] is True and ca.ensure('alice')['changed'] is False
    clock.advance(days=1)
    renewed = ca.ensure('alice', force=True)
    assert renewed['action'] == 'renewed' and renewed['serial'] != issued['serial']
    revoked = ca.revoke(identity='alice', which='superseded', reason='superseded')
    assert revoked['changed'] is True and revoked['revoked'] == [issued['serial']]
    published = ca.publish_crl(dest=str(tmp_path / 'ca.crl'), format='der')
    assert published['revoked_count'] == 1
    assert ca.publish_crl(dest=str(tmp_path / 'ca.crl'), format='der')['changed'] is False
    # Every one of those runs was a new client session; the server kept one backend for them all.
    assert _backend_pid(pooled_url) == before


def _advisory_locks(postgresql_server, key: int) -> int:
    with postgresql_server.admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                            (key,)).fetchone()[0]


def test_a_lock_a_finished_run_held_is_gone_for_the_next_run(postgresql_server, pooled_url, clock, tmp_path):
    """A run that ends while holding the store's session lock (the CRL lock) leaves it to DISCARD ALL, on the same
    reused server session: no lock outlives its run, and the next run publishes."""
    ca = _harness(pooled_url, clock)
    ca.ensure('alice')
    holder = _backend_pid(pooled_url)
    code = ('import psycopg, sys\n'
            'with psycopg.connect(sys.argv[1], autocommit=True) as conn:\n'
            '    conn.execute("SELECT pg_advisory_lock(%s)", (int(sys.argv[2]),))\n'
            '    print(conn.execute("SELECT pg_backend_pid()").fetchone()[0])\n')
    done = subprocess.run([sys.executable, '-c', code, pooled_url, str(EXCLUSIVE_LOCK_KEY)], capture_output=True,
                          text=True, check=True)
    assert int(done.stdout) == holder  # the lock was taken on the pooled backend, which lives on
    assert _advisory_locks(postgresql_server, EXCLUSIVE_LOCK_KEY) == 0
    outcome = {}
    publisher = threading.Thread(target=lambda: outcome.update(ca.publish_crl(dest=str(tmp_path / 'ca.crl'))),
                                 daemon=True)
    publisher.start()
    publisher.join(timeout=60)
    assert not publisher.is_alive(), 'the CRL lock of a finished run was still held'
    assert outcome['changed'] is True


def test_a_run_killed_inside_its_transaction_leaves_nothing_behind(pooled_url, clock):
    """SIGKILL while a run holds the store's write transaction: the pooler drops that server session (it was not
    idle), so the rows and locks go with it, and the next run issues at once."""
    ca = _harness(pooled_url, clock)
    code = ('import psycopg, sys, time\n'
            'conn = psycopg.connect(sys.argv[1], autocommit=True)\n'
            'conn.execute("BEGIN")\n'
            'conn.execute("LOCK TABLE certfleet.certificates IN EXCLUSIVE MODE")\n'
            'print("locked", flush=True)\n'
            'time.sleep(600)\n')
    with subprocess.Popen([sys.executable, '-c', code, pooled_url], stdout=subprocess.PIPE, text=True) as victim:
        assert victim.stdout.readline().strip() == 'locked'
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    outcome = {}
    issuer = threading.Thread(target=lambda: outcome.update(ca.ensure('bob')), daemon=True)
    issuer.start()
    issuer.join(timeout=60)
    assert not issuer.is_alive(), 'the killed run still held the table lock'
    assert outcome['action'] == 'issued'
