# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copying a whole CA state from one store to another, whatever their engines (private module_utils).

Only the logical content moves: the rows of every table in their order, never an engine's own row ids. The target
is a store being created (``open_store(..., create=True)``), so a copy that fails half-way leaves nothing: it is
discarded, or never activated. Renewal links point both ways, so certificates go in without them first and the
links follow.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.certfleet.pki.plugins.module_utils.store.base import PICKUP_COLUMNS, CertificateStore

CERTIFICATE_COLUMNS = ('serial', 'identity', 'subject', 'subject_json', 'sans_json', 'profile', 'key_type',
                       'key_status', 'public_key_sha256', 'not_before', 'not_after', 'fingerprint_sha256',
                       'fingerprint_sha1', 'pem', 'issued_at', 'status', 'is_current', 'pending_revocation',
                       'revoked_at', 'revocation_reason', 'renews', 'renewed_by', 'key_retain_until', 'key_purged_at')
BOOLEAN_COLUMNS = frozenset(('is_current', 'pending_revocation'))
LINK_COLUMNS = ('renews', 'renewed_by')

# table -> its logical columns, in the order a copy must respect (references first).
TABLES = (
    ('meta', ('key', 'value')),
    ('certificates', CERTIFICATE_COLUMNS),
    ('held_keys', ('serial', 'wrapped', 'retain_until')),
    ('audit', ('at', 'action', 'identity', 'serials', 'outcome', 'detail')),
    ('deployments', ('identity', 'host', 'serial', 'stores', 'deployed_at')),
    ('request_rows', ('digest', 'action', 'identity', 'serial', 'previous_serial', 'batch', 'line', 'processed_at')),
    ('host_audits', ('host', 'audited_at', 'summary', 'findings')),
    ('pickups', PICKUP_COLUMNS),
)
BATCH = 2000


def _normalised(columns: tuple, row) -> tuple:
    """Booleans as bool and blobs as bytes, whichever engine gave them."""
    return tuple(_value(columns[index], value) for index, value in enumerate(row))


def _value(name: str, value):
    if name in BOOLEAN_COLUMNS:
        return bool(value)
    return bytes(value) if isinstance(value, memoryview) else value


def table_rows(store: CertificateStore, table: str, columns: tuple):
    for row in store.export_rows(table, columns):
        yield _normalised(columns, row)


def content_digest(store: CertificateStore, skip_meta: tuple = ()) -> tuple:
    """(sha256 of every row of every table in order, rows per table): what "the same state" means. Call inside
    a read transaction."""
    digest = hashlib.sha256()
    counts = {}
    for table, columns in TABLES:
        counts[table] = 0
        for row in table_rows(store, table, columns):
            if table == 'meta' and row[0] in skip_meta:
                continue
            counts[table] += 1
            digest.update(json.dumps([table] + [v.hex() if isinstance(v, bytes) else v for v in row]).encode())
    return digest.hexdigest(), counts


def copy_state(source: CertificateStore, target: CertificateStore) -> dict:
    """Copy every row of ``source`` into the empty ``target``; call inside ``source.read()`` and
    ``target.write()``. Returns the rows per table."""
    counts = {}
    links: list = []
    for table, columns in TABLES:
        rows = table_rows(source, table, columns)
        if table == 'certificates':
            rows = _without_links(rows, links)
        counts[table] = _insert(target, table, columns, rows)
    target.import_links(links)
    return counts


def _without_links(rows, links: list):
    first = CERTIFICATE_COLUMNS.index(LINK_COLUMNS[0])
    for row in rows:
        if row[first] is not None or row[first + 1] is not None:
            links.append((row[first], row[first + 1], row[0]))
        yield row[:first] + (None, None) + row[first + 2:]


def _insert(target: CertificateStore, table: str, columns: tuple, rows) -> int:
    count = 0
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            target.import_rows(table, columns, batch)
            count += len(batch)
            batch = []
    if batch:
        target.import_rows(table, columns, batch)
        count += len(batch)
    return count
