# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA's state: the record type and the store interface (private module_utils).

The interface is the only door to the state: engines (SQLite, the embedded default; a shared SQL store) implement
it behind ``store/``, and ``store.factory.open_store`` chooses one from the CA's configuration. Connections, files,
locking, migrations and the engine's errors never reach a caller: errors arrive as StoreError (StoreDamagedError,
code ``store_damaged``, for damaged storage). The tests in ``tests/unit/plugins/module_utils/store/test_contract.py``
are what every engine must pass.
"""

from __future__ import annotations

import abc
import datetime
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import subject_display
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import from_iso, to_iso

REVOCATION_REASONS = ('unspecified', 'key_compromise', 'ca_compromise', 'affiliation_changed', 'superseded',
                      'cessation_of_operation', 'certificate_hold', 'privilege_withdrawn', 'aa_compromise')

KEY_HELD = 'held'          # the CA host generated the key and holds it, encrypted, for pickup
KEY_PURGED = 'purged'      # held once; purged after its retention window
KEY_ENDPOINT = 'endpoint'  # issued from a CSR: the key never left the endpoint


@dataclass
class CertificateRecord:
    serial: str
    identity: str
    subject: dict
    subject_text: str
    sans: list
    profile: str
    key_type: str
    key_status: str
    public_key_sha256: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    fingerprint_sha256: str
    fingerprint_sha1: str
    pem: str
    issued_at: datetime.datetime
    status: str = 'valid'
    is_current: bool = False
    pending_revocation: bool = False
    revoked_at: datetime.datetime | None = None
    revocation_reason: str | None = None
    renews: str | None = None
    renewed_by: str | None = None
    key_retain_until: datetime.datetime | None = None
    key_purged_at: datetime.datetime | None = None
    extra: dict = field(default_factory=dict)

    def state(self, now: datetime.datetime) -> str:
        """valid, revoked or expired (expired is derived from the clock, never stored)."""
        if self.status == 'revoked':
            return 'revoked'
        if now >= self.not_after:
            return 'expired'
        return 'valid'

    def to_result(self, now: datetime.datetime, include_pem: bool = False) -> dict:
        """A result dict without any secret."""
        result = {
            'serial': self.serial,
            'identity': self.identity,
            'subject': self.subject_text,
            'subject_fields': subject_display(self.subject),
            'sans': list(self.sans),
            'profile': self.profile,
            'key_type': self.key_type,
            'key_status': self.key_status,
            'not_before': to_iso(self.not_before),
            'not_after': to_iso(self.not_after),
            'fingerprint_sha256': self.fingerprint_sha256,
            'fingerprint_sha1': self.fingerprint_sha1,
            'status': self.state(now),
            'current': self.is_current,
            'pending_revocation': self.pending_revocation,
            'revoked_at': to_iso(self.revoked_at),
            'revocation_reason': self.revocation_reason,
            'renews': self.renews,
            'renewed_by': self.renewed_by,
            'issued_at': to_iso(self.issued_at),
            'key_retain_until': to_iso(self.key_retain_until),
            'days_left': max(0, int((self.not_after - now).total_seconds() // 86400)),
        }
        if include_pem:
            result['certificate'] = self.pem
        return result


PICKUP_FORMATS = ('pkcs12-modern', 'pkcs12-legacy', 'mobileconfig')
# Why a pickup closed: every download was used, its window passed, too many wrong PINs, the officer withdrew it,
# a pickup for a newer certificate of the identity replaced it, or its PIN could not be handed over.
PICKUP_CLOSE_REASONS = ('downloaded', 'expired', 'locked', 'withdrawn', 'superseded', 'pin_lost')
# The columns of a pickup that change after it is created (everything else is fixed at creation).
PICKUP_COLUMNS = ('pickup_id', 'identity', 'serial', 'token_hash', 'pin_hash', 'created_at', 'format',
                  'lock_after_first_days', 'expires_at', 'max_downloads', 'downloads', 'first_pickup_at',
                  'failed_attempts', 'max_attempts', 'locked_at', 'closed_at', 'close_reason', 'renewal_of',
                  'confirmed_at')
_PICKUP_TIMES = frozenset(('created_at', 'expires_at', 'first_pickup_at', 'locked_at', 'closed_at', 'confirmed_at'))
PICKUP_MUTABLE = ('downloads', 'first_pickup_at', 'failed_attempts', 'locked_at', 'closed_at', 'close_reason',
                  'confirmed_at')


@dataclass
class PickupRecord:
    """One pickup credential: a retrieval URL (``pickup_id`` plus a secret) and a PIN, both kept only as slow
    hashes, for the certificate ``serial`` and its held key. The hashes never appear in a repr."""
    pickup_id: str
    identity: str
    serial: str
    token_hash: str = field(repr=False)
    pin_hash: str = field(repr=False)
    created_at: datetime.datetime
    format: str = 'pkcs12-modern'
    lock_after_first_days: int | None = None
    expires_at: datetime.datetime | None = None
    max_downloads: int = 1
    downloads: int = 0
    first_pickup_at: datetime.datetime | None = None
    failed_attempts: int = 0
    max_attempts: int = 5
    locked_at: datetime.datetime | None = None
    closed_at: datetime.datetime | None = None
    close_reason: str | None = None
    renewal_of: str | None = None
    confirmed_at: datetime.datetime | None = None

    def window_ends_at(self) -> datetime.datetime | None:
        """When the pickup stops serving downloads: its issuance-based end, or N days after the first pickup,
        whichever comes first (None: only the downloads and attempts limit it)."""
        ends = [self.expires_at] if self.expires_at is not None else []
        if self.lock_after_first_days is not None and self.first_pickup_at is not None:
            ends.append(self.first_pickup_at + datetime.timedelta(days=self.lock_after_first_days))
        return min(ends) if ends else None

    def is_open(self, now: datetime.datetime) -> bool:
        if self.closed_at is not None:
            return False
        ends = self.window_ends_at()
        return ends is None or now < ends

    def state(self, now: datetime.datetime) -> str:
        """locked, expired, picked_up, closed or open (a window that passed reads as expired before it is closed)."""
        if self.locked_at is not None:
            return 'locked'
        if self.close_reason == 'expired' or (self.closed_at is None and not self.is_open(now)):
            return 'expired'
        if self.downloads > 0:
            return 'picked_up'
        if self.closed_at is not None:
            return 'closed'
        return 'open'

    def to_result(self, now: datetime.datetime) -> dict:
        """A result dict without any secret or hash."""
        return {
            'pickup_id': self.pickup_id, 'identity': self.identity, 'serial': self.serial, 'format': self.format,
            'state': self.state(now), 'open': self.is_open(now), 'created_at': to_iso(self.created_at),
            'lock_after_first_pickup_days': self.lock_after_first_days, 'expires_at': to_iso(self.expires_at),
            'window_ends_at': to_iso(self.window_ends_at()), 'max_downloads': self.max_downloads,
            'downloads': self.downloads, 'first_pickup_at': to_iso(self.first_pickup_at),
            'failed_attempts': self.failed_attempts, 'max_attempts': self.max_attempts,
            'locked_at': to_iso(self.locked_at), 'closed_at': to_iso(self.closed_at),
            'close_reason': self.close_reason, 'renewal_of': self.renewal_of,
            'confirmed_at': to_iso(self.confirmed_at),
        }


def pickup_row(pickup: PickupRecord) -> tuple:
    """The pickup as stored: values in PICKUP_COLUMNS order, times as ISO text (both engines store text)."""
    return tuple(to_iso(getattr(pickup, name)) if name in _PICKUP_TIMES else getattr(pickup, name)
                 for name in PICKUP_COLUMNS)


def pickup_from_row(row) -> PickupRecord:
    return PickupRecord(**{name: from_iso(value) if name in _PICKUP_TIMES else value
                           for name, value in zip(PICKUP_COLUMNS, row, strict=True)})


def pickup_changes(changes: dict) -> tuple:
    """(column names, values) of an update of a pickup; refuses a column that never changes."""
    unknown = sorted(set(changes) - set(PICKUP_MUTABLE))
    if unknown:
        raise ValueError('pickup columns %s never change' % ', '.join(unknown))
    names = sorted(changes)
    return names, [to_iso(changes[n]) if n in _PICKUP_TIMES else changes[n] for n in names]


@dataclass
class RevokedEntry:
    serial: str
    revoked_at: datetime.datetime
    reason: str


class CertificateStore(abc.ABC):
    """What the CA needs from its state. Writes happen only inside ``write()``; every method is one statement.

    A store opened by the factory is at the newest schema (older ones are migrated in place on open). A store opened
    with ``create=True`` is not yet the CA's state: :meth:`activate` makes it so, :meth:`discard` abandons it.
    """

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the state is, for messages: a file path, or a URL without its password."""

    @property
    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version the store holds."""

    @abc.abstractmethod
    def activate(self) -> None:
        """Make a store opened with ``create=True`` the CA's state, and close it. Until then nobody opening the CA's
        state sees it, so a CA exists only once its state is complete."""

    @abc.abstractmethod
    def discard(self) -> None:
        """Close a store opened with ``create=True`` and remove what it wrote: the creation of the CA was rolled
        back."""

    @abc.abstractmethod
    def write(self):
        """Context manager: one serialised write transaction (commits on success, rolls back on error)."""

    @abc.abstractmethod
    def exclusive(self):
        """Context manager, outside transactions: one holder at a time among all processes using this store
        (on every node, for a shared store), held across transactions. Used to publish CRLs one at a time."""

    @abc.abstractmethod
    def read(self):
        """Context manager: a consistent read snapshot."""

    @abc.abstractmethod
    def get_meta(self, key: str, default=None): ...

    def get_meta_many(self, keys) -> dict:
        """Several meta values as one consistent read, each key mapped to its value or None. Callable outside a
        transaction (an engine answers it with one statement)."""
        with self.read():
            return {key: self.get_meta(key) for key in keys}

    @abc.abstractmethod
    def set_meta(self, key: str, value) -> None: ...

    @abc.abstractmethod
    def current(self, identity: str) -> CertificateRecord | None: ...

    def current_later(self, identity: str):
        """``current(identity)`` asked now and answered when the returned function is called, in the same
        transaction. A store reached over the network sends the question and lets the caller work meanwhile (the
        service signs while it travels); nothing else may be asked of the store before the answer is read."""
        record = self.current(identity)
        return lambda: record

    @abc.abstractmethod
    def get(self, serial: str) -> CertificateRecord | None: ...

    @abc.abstractmethod
    def find(self, identity: str | None = None, serials: list | None = None, identities: list | None = None) -> list:
        ...

    @abc.abstractmethod
    def serial_exists(self, serial: str) -> bool: ...

    @abc.abstractmethod
    def insert(self, record: CertificateRecord, wrapped_key: bytes | None = None) -> None: ...

    @abc.abstractmethod
    def identity_has_history(self, identity: str) -> bool: ...

    def current_with_history(self, identity: str) -> tuple:
        """(current record or None, whether the identity ever had a certificate) as one consistent read; callable
        outside a transaction (an engine answers it with one statement)."""
        with self.read():
            current = self.current(identity)
            return current, current is not None or self.identity_has_history(identity)

    @abc.abstractmethod
    def supersede(self, old_serial: str, new_serial: str) -> None: ...

    @abc.abstractmethod
    def link_renewal(self, old_serial: str, new_serial: str) -> None: ...

    @abc.abstractmethod
    def revoke(self, serial: str, at: datetime.datetime, reason: str) -> None: ...

    @abc.abstractmethod
    def revoked_entries(self) -> list: ...

    @abc.abstractmethod
    def revocation_generation(self) -> int:
        """How many revocations the store has recorded: ``revoke`` raises it in the same transaction, so a CRL
        published at generation N lists every revocation the store held then (cheap: one row, whatever the size)."""

    @abc.abstractmethod
    def counts(self, now: datetime.datetime) -> dict:
        """Totals over the whole store (reads every row: for the inventory, never on a per-identity path)."""

    @abc.abstractmethod
    def record_deployment(self, identity: str, host: str, serial: str, stores: list,
                          at: datetime.datetime) -> bool: ...

    @abc.abstractmethod
    def remove_deployment(self, identity: str, host: str) -> bool: ...

    @abc.abstractmethod
    def deployments(self, identities: list | None = None) -> list: ...

    @abc.abstractmethod
    def record_host_audit(self, host: str, at: datetime.datetime, summary: dict, findings: list) -> None:
        """Keep what the last drift audit found on ``host`` (its counts and findings), replacing the previous."""

    @abc.abstractmethod
    def host_audits(self) -> list:
        """The last drift audit of every audited host: [{host, audited_at, summary, findings}], by host."""

    @abc.abstractmethod
    def record_request_rows(self, rows: list) -> None:
        """Remember bulk request lines carried out (digest, action, identity, serial, previous_serial, batch, line,
        processed_at)."""

    @abc.abstractmethod
    def request_rows(self, digests: list) -> list: ...

    # -- pickups (schema 5) ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def insert_pickup(self, pickup: PickupRecord) -> None: ...

    @abc.abstractmethod
    def get_pickup(self, pickup_id: str) -> PickupRecord | None: ...

    @abc.abstractmethod
    def find_pickups(self, identity: str | None = None, serial: str | None = None,
                     open_only: bool = False) -> list:
        """Pickups by creation time (then id); ``open_only``: those not closed (a passed window is the caller's
        business: it depends on the clock)."""

    @abc.abstractmethod
    def update_pickup(self, pickup_id: str, changes: dict) -> bool:
        """Set the PICKUP_MUTABLE columns in ``changes``; True when the pickup exists."""

    @abc.abstractmethod
    def wrapped_key(self, serial: str) -> bytes | None: ...

    @abc.abstractmethod
    def purge_keys(self, now: datetime.datetime) -> None:
        """Delete the held keys whose retention ended by ``now``; their certificates show key_status purged."""

    @abc.abstractmethod
    def drop_key(self, serial: str, now: datetime.datetime) -> bool: ...

    @abc.abstractmethod
    def append_audit(self, at: datetime.datetime, action: str, identity: str | None, serials: list,
                     outcome: str, detail: dict | None = None) -> None: ...

    @abc.abstractmethod
    def audit_entries(self, identity: str | None = None, limit: int | None = None) -> list: ...

    # -- whole-state copy (store.transfer) ---------------------------------------------------------------------
    @abc.abstractmethod
    def export_rows(self, table: str, columns: tuple):
        """Every row of ``table`` as tuples of ``columns``, in insertion order."""

    @abc.abstractmethod
    def import_rows(self, table: str, columns: tuple, rows: list) -> None:
        """Append ``rows`` (tuples of ``columns``) to ``table``; the engine numbers them itself."""

    @abc.abstractmethod
    def import_links(self, links: list) -> None:
        """Set renewal links: ``(renews, renewed_by, serial)`` for each certificate."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def check_integrity(self) -> None:
        """Raise StoreDamagedError when the storage is damaged (read everything the backend can check)."""
