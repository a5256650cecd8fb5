# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flat cost as the store grows (issue 11): the per-identity operations and the CRL, on SQLite and PostgreSQL.

    .venv/bin/python bench/scale/run.py [--large 1000000] [--small 1000] [--crl-entries 100000]
                                        [--backends sqlite,postgresql] [--reps 15] [--keep]

For each backend three stores of ONE CA (EC P-256 key; the same CA directory copied, so the same key everywhere):

  small   --small certificates (1,000), one per identity, every 10th revoked
  large   --large certificates (1,000,000), the same mix
  crl     --crl-entries revoked certificates (100,000) and 2,000 valid ones

Filling (minutes, not hours): the first 5,000 rows of a store are certificates really signed by the CA
(Signer.sign, the code path issuance uses, for CSR-style requests: one endpoint public key, no held key) written
through the store's own ``insert`` in one transaction. The other rows are copied from them inside the engine (one
INSERT ... SELECT: a recursive CTE in SQLite, generate_series in PostgreSQL, then ANALYZE there as autovacuum
would): row i has its own identity, subject, e-mail, serial and fingerprints and real row i % 5,000's PEM, key
and dates, so every unique index sees distinct values. Rows past the first 5,000 are not self-consistent (the PEM's
serial is not the row's), which nothing measured here reads.

Measured through ManagedCA with the CA opened once per store (the operation, not the process start), the small and
the large store alternating within each repetition (medians):

  issue    ensure_certificate of a new identity (EC P-256 key, sign, commit)
  query    query(identity=...) of an existing identity (client_certificate_info, the deploy role)
  plan     plan() for 1,000 existing identities spread over the store (client_certificate_info requests)
  revoke   revoke(serial=...) of a valid certificate

and on the crl store (100,000 entries):

  floor        cryptography alone: RevokedCertificateBuilder per entry + CertificateRevocationListBuilder given the
               whole list + sign, for the list the store returns (read beforehand, not timed)
  publish      publish_crl() after one more revocation (full path: integrity check, list read, sign, write)
  unchanged    publish_crl() with nothing changed, crl store against the small store (O(1) in the entries)

PostgreSQL runs on a throw-away cluster (tests/support/postgresql_server.py; fsync=off,
Unix socket); it is skipped with the reason when the server binaries or psycopg are missing. Until ManagedCA takes
a store URL, the PostgreSQL case opens ManagedCA on a CA directory and replaces its store with the PostgreSQL store
holding the same CA's meta (fingerprint, key-wrap salt, settings).

Writes bench/results/scale.json and bench/results/scale.md; the work folder (several GB with 1,000,000 rows) is
removed unless --keep.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(REPO, 'bench', 'results')
sys.path.insert(0, os.path.join(REPO, '.build', 'collections'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'support'))  # the test suite's PostgreSQL server

# pylint: disable=wrong-import-position,import-error
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import generate_private_key  # noqa: E402
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA  # noqa: E402
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca  # noqa: E402
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import open_store  # noqa: E402

PASSPHRASE = 'bench-scale-passphrase'
REAL = 5000


def identity_of(i: int) -> str:
    return 'fill-%07d' % i


def revoked_row(i: int) -> bool:
    return i % 10 == 7


# -- filling -----------------------------------------------------------------------------------------------------

def real_records(ca, count: int) -> list:
    """``count`` certificates really signed by the CA (CSR-style: one endpoint key, no held key)."""
    signer, public_key, now = ca.signer(), generate_private_key('ec-p256').public_key(), ca.clock()
    records = []
    for i in range(count):
        wanted = ca.build_wanted(identity=identity_of(i), subject={'CN': 'User %d' % i},
                                 email='u%d@example.org' % i)
        records.append(signer.sign(wanted, public_key, now, key_held=False)[1])
    return records


def real_rows(store, real: list, count: int, revoked, now) -> None:
    """The first rows: the really signed certificates, through the store's own insert, in one transaction."""
    with store.write():
        for i, record in enumerate(real[:count]):
            if revoked(i):
                record = copy.copy(record)
                record.status, record.is_current = 'revoked', False
                record.revoked_at, record.revocation_reason = now - datetime.timedelta(seconds=i), 'superseded'
            store.insert(record)


# The other rows, copied inside the engine from real row i % REAL: own identity, subject, e-mail, serial and
# fingerprints (subject_json in the store's own form, {"CN": ["..."]}, so that a request for the same subject finds
# no difference, as with a real row); PEM, key, dates and profile of the real one. {revoked} is an SQL condition on i.
COPY_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {count})
INSERT INTO certificates (serial, identity, subject, subject_json, sans_json, profile, key_type, key_status,
    public_key_sha256, not_before, not_after, fingerprint_sha256, fingerprint_sha1, pem, issued_at, status, is_current,
    pending_revocation, revoked_at, revocation_reason)
SELECT printf('7F%028X', i), printf('fill-%07d', i), 'CN=User ' || i, '{{"CN": ["User ' || i || '"]}}',
    '["email:u' || i || '@example.org"]', c.profile, c.key_type, c.key_status, c.public_key_sha256, c.not_before,
    c.not_after, printf('%064X', i), printf('%040X', i), c.pem, c.issued_at,
    CASE WHEN {revoked} THEN 'revoked' ELSE 'valid' END, CASE WHEN {revoked} THEN 0 ELSE 1 END, 0,
    CASE WHEN {revoked} THEN c.issued_at END, CASE WHEN {revoked} THEN 'superseded' END
FROM n JOIN certificates AS c ON c.identity = printf('fill-%07d', i % {real})
"""

COPY_POSTGRESQL = """
INSERT INTO certfleet.certificates (serial, identity, subject, subject_json, sans_json, profile, key_type,
    key_status, public_key_sha256, not_before, not_after, fingerprint_sha256, fingerprint_sha1, pem, issued_at, status,
    is_current, pending_revocation, revoked_at, revocation_reason)
SELECT '7F' || upper(lpad(to_hex(i), 28, '0')), 'fill-' || lpad(i::text, 7, '0'), 'CN=User ' || i,
    '{{"CN": ["User ' || i || '"]}}', '["email:u' || i || '@example.org"]', c.profile, c.key_type, c.key_status,
    c.public_key_sha256, c.not_before, c.not_after, upper(lpad(to_hex(i), 64, '0')), upper(lpad(to_hex(i), 40, '0')),
    c.pem, c.issued_at, CASE WHEN {revoked} THEN 'revoked' ELSE 'valid' END, NOT ({revoked}), FALSE,
    CASE WHEN {revoked} THEN c.issued_at END, CASE WHEN {revoked} THEN 'superseded' END
FROM generate_series({first}, {count} - 1) AS i
JOIN certfleet.certificates AS c ON c.identity = 'fill-' || lpad((i % {real})::text, 7, '0')
"""


def copy_rows(backend, size: str, count: int, revoked_sql: str) -> None:
    if count <= REAL:
        return
    params = {'first': REAL, 'count': count, 'real': REAL, 'revoked': revoked_sql}
    if backend.server is None:
        conn = sqlite3.connect(os.path.join(backend.paths[size], 'state.db'))
        try:
            with conn:
                conn.execute(COPY_SQLITE.format(**params))
        finally:
            conn.close()
        return
    import psycopg  # pylint: disable=import-outside-toplevel
    with psycopg.connect(backend.urls[size], autocommit=True) as conn:
        conn.execute(COPY_POSTGRESQL.format(**params))
        conn.execute('ANALYZE certfleet.certificates')  # what autovacuum does after a large insert


# -- the CAs and stores --------------------------------------------------------------------------------------------

class Backend:
    """Three CA folders (small, large, crl) for one backend; for PostgreSQL each has a database too."""

    def __init__(self, name: str, work: str, pristine: str, server=None):
        self.name, self.server, self.urls, self.paths = name, server, {}, {}
        for size in ('small', 'large', 'crl'):
            path = os.path.join(work, name, size)
            shutil.copytree(pristine, path)
            self.paths[size] = path
            if server is not None:
                self.urls[size] = self._pg_store(server, pristine)

    @staticmethod
    def _pg_store(server, pristine: str) -> str:
        """A database holding the pristine CA's meta: the same CA's state, empty, in PostgreSQL."""
        url = server.url(server.create_database())
        conn = sqlite3.connect(os.path.join(pristine, 'state.db'))
        try:
            meta = conn.execute('SELECT key, value FROM meta').fetchall()
        finally:
            conn.close()
        store = open_store(store_url=url, create=True)
        with store.write():
            for key, value in meta:
                store.set_meta(key, json.loads(value))
        store.activate()
        return url

    def store(self, size: str):
        if self.server is None:
            return open_store(ca_path=self.paths[size])
        return open_store(store_url=self.urls[size])

    def open(self, size: str) -> ManagedCA:
        ca = ManagedCA(self.paths[size], PASSPHRASE)
        if self.server is not None:
            ca.store.close()
            ca.store = open_store(store_url=self.urls[size])
        return ca


# -- timing --------------------------------------------------------------------------------------------------------

def timed(action, *args, **kwargs) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


def median_ms(values: list) -> float:
    return round(statistics.median(values) * 1000, 3)


def per_identity_cases(cas: dict, sizes: dict, reps: int) -> dict:
    """issue, query, plan, revoke on the small and the large store, alternating (which goes first alternates)."""
    times = {case: {'small': [], 'large': []} for case in ('issue', 'query', 'plan', 'revoke')}
    # 1,000 distinct identities spread over the whole store (every one of them, in the small store).
    spread = {size: [k * (sizes[size] // 1000) + (k * 7) % (sizes[size] // 1000) for k in range(1000)]
              for size in sizes}
    requests = {size: [{'identity': identity_of(i), 'subject': {'CN': 'User %d' % i}, 'email': 'u%d@example.org' % i}
                       for i in spread[size]] for size in sizes}
    valid = {size: [i for i in spread[size] if not revoked_row(i)] for size in sizes}
    for rep in range(reps):
        order = ('small', 'large') if rep % 2 == 0 else ('large', 'small')
        for size in order:
            ca = cas[size]
            wanted = ca.build_wanted(identity='new-%d' % rep, subject={'CN': 'New %d' % rep}, key_type='ec-p256')
            times['issue'][size].append(timed(ca.ensure_certificate, wanted))
            who = identity_of(valid[size][(rep * 37) % len(valid[size])])
            times['query'][size].append(min(timed(ca.query, identity=who) for _attempt in range(5)))
            if rep < max(3, reps // 3):
                times['plan'][size].append(timed(ca.plan, requests[size]))
            victim = valid[size][-1 - rep]
            with ca.store.read():
                serial = ca.store.current(identity_of(victim)).serial
            times['revoke'][size].append(timed(ca.revoke, serial=serial, reason='key_compromise'))
    return {case: {size: median_ms(values) for size, values in by_size.items()} for case, by_size in times.items()}


def crl_floor(ca, entries) -> None:
    """cryptography alone, given the list: the entries, the builder with the whole list, the signature."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes  # pylint: disable=import-outside-toplevel
    now = datetime.datetime.now(datetime.timezone.utc)
    revoked = []
    for entry in entries:
        builder = x509.RevokedCertificateBuilder().serial_number(int(entry.serial, 16)).revocation_date(
            entry.revoked_at)
        if entry.reason != 'unspecified':
            builder = builder.add_extension(x509.CRLReason(getattr(x509.ReasonFlags, entry.reason)), critical=False)
        revoked.append(builder.build())
    x509.CertificateRevocationListBuilder(
        issuer_name=ca.authority.certificate.subject, last_update=now, next_update=now + datetime.timedelta(days=7),
        extensions=[x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(1))],
        revoked_certificates=revoked).sign(ca.authority.key, hashes.SHA256())


def crl_cases(cas: dict, reps: int, valid_in_crl_store: list) -> dict:
    crl, small = cas['crl'], cas['small']
    crl.publish_crl()
    small.publish_crl()
    times: dict = {'floor': [], 'publish': [], 'unchanged_crl': [], 'unchanged_small': []}
    for rep in range(reps):
        with crl.store.read():
            serial = crl.store.current(identity_of(valid_in_crl_store[rep])).serial
        crl.revoke(serial=serial, reason='key_compromise')
        with crl.store.read():
            entries = crl.store.revoked_entries()
        cases = [('floor', crl_floor, (crl, entries)), ('publish', crl.publish_crl, ())]
        for name, action, arguments in cases if rep % 2 == 0 else cases[::-1]:
            times[name].append(timed(action, *arguments))
        for name, ca in (('unchanged_crl', crl), ('unchanged_small', small)) if rep % 2 else (
                ('unchanged_small', small), ('unchanged_crl', crl)):
            times[name].append(min(timed(ca.publish_crl) for _attempt in range(5)))
    result = {name: median_ms(values) for name, values in times.items()}
    result['entries'] = len(entries)
    return result


# -- one backend ---------------------------------------------------------------------------------------------------

def run_backend(backend: Backend, args, real: list, now) -> dict:
    sizes = {'small': args.small, 'large': args.large, 'crl': args.crl_entries + 2000}
    rules = {'small': (revoked_row, 'i % 10 = 7'), 'large': (revoked_row, 'i % 10 = 7'),
             'crl': (lambda i: i < args.crl_entries, 'i < %d' % args.crl_entries)}
    fill_times = {}
    for size, count in sizes.items():
        store = backend.store(size)
        started = time.perf_counter()
        real_rows(store, real, min(count, REAL), rules[size][0], now)
        store.close()
        copy_rows(backend, size, count, rules[size][1])
        fill_times[size] = time.perf_counter() - started
    print('%s: filled in %s' % (backend.name, {k: '%.0f s' % v for k, v in fill_times.items()}), flush=True)
    cas = {size: backend.open(size) for size in ('small', 'large', 'crl')}
    try:
        result = {'fill_seconds': {k: round(v, 1) for k, v in fill_times.items()},
                  'per_identity': per_identity_cases(cas, sizes, args.reps),
                  'crl': crl_cases(cas, max(3, args.reps // 3), list(range(args.crl_entries, sizes['crl'])))}
    finally:
        for ca in cas.values():
            ca.store.close()
    print(json.dumps(result, indent=1), flush=True)
    return result


def postgresql_server():
    """(server, None) or (None, why not)."""
    try:
        from postgresql_server import (  # pylint: disable=import-outside-toplevel
            PORT, PostgreSQLServer, why_unavailable,
        )
    except ImportError as exc:
        return None, 'the test server helper cannot be imported (%s)' % exc
    reason = why_unavailable()
    if reason:
        return None, reason

    class TunedServer(PostgreSQLServer):
        """The test cluster with the usual tuning of a server holding a large database: shared_buffers 512 MB
        (the default, 128 MB, is sized for a laptop)."""

        def resume(self) -> None:
            self._run('pg_ctl', '-D', self.data, '-l', os.path.join(self.base, 'server.log'), '-w', '-t', '60', '-o',
                      "-k %s -c listen_addresses='' -p %d -c fsync=off -c shared_buffers=512MB"
                      % (self.socket_dir, PORT), 'start')

    return TunedServer().start(), None


def markdown(report: dict) -> str:
    lines = ['# Scale benchmark (bench/scale/run.py)', '',
             '%s; %s; %d cores; load average at start %s; small %d, large %d certificates, CRL %d entries.'
             % (report['date'], report['machine'], report['cores'], report['load'], report['small'],
                report['large'], report['crl_entries']), '',
             '| backend | case | small store | large store | large / small |', '|---|---|---:|---:|---:|']
    for name, result in report['backends'].items():
        if 'skipped' in result:
            lines.append('| %s | skipped: %s | | | |' % (name, result['skipped']))
            continue
        for case, by_size in result['per_identity'].items():
            lines.append('| %s | %s | %.2f ms | %.2f ms | **%.2fx** |' % (
                name, case, by_size['small'], by_size['large'], by_size['large'] / by_size['small']))
    lines += ['', '| backend | CRL entries | floor (cryptography) | publish after a revocation | publish / floor '
              '| unchanged, %d entries | unchanged, small store | ratio |' % report['crl_entries'],
              '|---|---:|---:|---:|---:|---:|---:|---:|']
    for name, result in report['backends'].items():
        if 'skipped' in result:
            continue
        crl = result['crl']
        lines.append('| %s | %d | %.0f ms | %.0f ms | **%.2fx** | %.2f ms | %.2f ms | **%.2fx** |' % (
            name, crl['entries'], crl['floor'], crl['publish'], crl['publish'] / crl['floor'],
            crl['unchanged_crl'], crl['unchanged_small'], crl['unchanged_crl'] / crl['unchanged_small']))
    return '\n'.join(lines) + '\n'


def main() -> int:
    global REAL  # pylint: disable=global-statement
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--large', type=int, default=1000000)
    parser.add_argument('--small', type=int, default=1000)
    parser.add_argument('--crl-entries', type=int, default=100000)
    parser.add_argument('--backends', default='sqlite,postgresql')
    parser.add_argument('--reps', type=int, default=15)
    parser.add_argument('--work', default=None, help='work folder (default: a temporary one under /var/tmp)')
    parser.add_argument('--keep', action='store_true')
    parser.add_argument('--real', type=int, default=5000, help='really signed certificates per store (5,000)')
    args = parser.parse_args()
    REAL = args.real
    work = args.work or tempfile.mkdtemp(prefix='certfleet-scale-', dir='/var/tmp')
    os.makedirs(RESULTS, exist_ok=True)
    pristine = os.path.join(work, 'pristine')
    ensure_ca(ca_path=pristine, ca_passphrase=PASSPHRASE, subject={'CN': 'Bench Scale CA'}, key_type='ec-p256',
              valid_days=3650)
    with ManagedCA(pristine, PASSPHRASE) as ca:
        now = ca.clock()
        real = real_records(ca, args.real)
    report = {'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
              'machine': '%s %s, Python %s' % (platform.system(), platform.machine(), platform.python_version()),
              'cores': len(os.sched_getaffinity(0)), 'load': '%.1f %.1f %.1f' % os.getloadavg(),
              'small': args.small, 'large': args.large, 'crl_entries': args.crl_entries, 'backends': {}}
    server = None
    try:
        for name in args.backends.split(','):
            if name == 'postgresql':
                server, why = postgresql_server()
                if server is None:
                    print('postgresql: skipped: %s' % why, flush=True)
                    report['backends'][name] = {'skipped': why}
                    continue
            backend = Backend(name, work, pristine, server if name == 'postgresql' else None)
            report['backends'][name] = run_backend(backend, args, real, now)
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(RESULTS, 'scale.json'), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1)
    text = markdown(report)
    with open(os.path.join(RESULTS, 'scale.md'), 'w', encoding='utf-8') as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
