# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle engine: each rule of issue, renew and revoke written once (private module_utils).

- ``decide`` says whether an identity needs a certificate, and why, as codes with text;
- ``Signer.sign`` makes a client certificate and its store record;
- ``commit_issued`` writes issued certificates (supersede, insert, link, audit) and ``commit_revoked`` revokes,
  inside the caller's store transaction.
The single-identity module, plan mode and bulk requests all go through these; none restates them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import BACKDATE, build_client_certificate
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import RenewWindow, to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import (
    CertificateRecord, CertificateStore, KEY_ENDPOINT, KEY_HELD,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import (
    fingerprint, format_serial, public_key_sha256,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import certificate_sans, subject_to_name

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

# The defaults every layer takes from here: modules, plan mode, bulk requests, roles (through the modules).
RENEW_BEFORE = '30d'
VALID_DAYS = 365
KEY_TYPE = 'rsa2048'
KEY_RETENTION_DAYS = 30

# Decision reason codes. The first group leads to a new certificate on its own; CHANGES say how the wanted
# certificate differs from the current one.
ISSUE_CODES = ('no_certificate', 'previous_revoked')
DUE_CODES = ('force', 'expired', 'renew_window')
CHANGES = ('subject_changed', 'sans_changed', 'profile_changed', 'key_changed', 'key_source_changed',
           'key_type_changed')
UP_TO_DATE = 'up_to_date'
KEPT = 'kept'  # renew=false: the current certificate is kept whatever its window (decided elsewhere, once)


@dataclass
class Wanted:
    """A validated request for one identity's certificate."""
    identity: str
    subject: dict
    sans: list
    profile: str
    key_type: str
    valid_days: int
    window: RenewWindow
    force: bool
    csr: object = None
    key_retention: int = KEY_RETENTION_DAYS
    email: str | None = None
    renew: bool = True

    def display(self) -> dict:
        return {'identity': self.identity, 'subject': subject_to_name(self.subject).rfc4514_string(),
                'sans': list(self.sans), 'profile': self.profile, 'key_type': self.key_type}


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True)
class Decision:
    """``action`` is issue, renew or none; ``reasons`` say why, each with a code."""
    action: str
    reasons: tuple = ()
    quiet_code: str = UP_TO_DATE  # the code of a decision without reasons

    @property
    def codes(self) -> list:
        return [r.code for r in self.reasons]

    @property
    def texts(self) -> list:
        return [r.text for r in self.reasons]

    @property
    def code(self) -> str:
        """The leading reason's code, or up_to_date (kept) when nothing is to be done."""
        return self.reasons[0].code if self.reasons else self.quiet_code

    @property
    def window_reached(self) -> bool:
        """Expired, or inside the renewal window: due by time alone."""
        return any(c in ('expired', 'renew_window') for c in self.codes)

    def changes(self) -> list:
        return [r for r in self.reasons if r.code in CHANGES]

    def to_result(self) -> dict:
        return {'reason': '; '.join(self.texts) or None, 'reasons': self.texts, 'reason_code': self.code,
                'reason_codes': self.codes}


def decide(current: CertificateRecord | None, wanted: Wanted, now: datetime.datetime,
           had_history: bool = False) -> Decision:
    """The one renewal rule: does ``wanted.identity`` need a certificate now, and why."""
    if current is None:
        if had_history:
            return Decision('issue', (Reason('previous_revoked', 'no current certificate (the previous one was '
                                                                 'revoked)'),))
        return Decision('issue', (Reason('no_certificate', 'no current certificate'),))
    if not wanted.renew and now < current.not_after:
        return Decision('none', quiet_code=KEPT)
    reasons = []
    if wanted.force:
        reasons.append(Reason('force', 'force is set'))
    if now >= current.not_after:
        reasons.append(Reason('expired', 'expired at %s' % to_iso(current.not_after)))
    elif now >= wanted.window.starts_at(current.not_before, current.not_after):
        reasons.append(Reason('renew_window', 'expires at %s, within renew_before %s'
                              % (to_iso(current.not_after), wanted.window)))
    reasons += differences(current, wanted)
    return Decision('renew' if reasons else 'none', tuple(reasons))


def differences(current: CertificateRecord, wanted: Wanted) -> list:
    """How the wanted certificate differs from the current one, as reasons with CHANGES codes."""
    found = []
    if current.subject != wanted.subject:
        found.append(Reason('subject_changed', 'subject differs: %s -> %s'
                            % (current.subject_text, subject_to_name(wanted.subject).rfc4514_string())))
    if current.sans != wanted.sans:
        added = sorted(set(wanted.sans) - set(current.sans))
        removed = sorted(set(current.sans) - set(wanted.sans))
        found.append(Reason('sans_changed', 'SANs differ: %s'
                            % ', '.join(['+' + s for s in added] + ['-' + s for s in removed])))
    if current.profile != wanted.profile:
        found.append(Reason('profile_changed', 'profile differs: %s -> %s' % (current.profile, wanted.profile)))
    if wanted.csr is not None:
        if current.public_key_sha256 != public_key_sha256(wanted.csr.public_key()):
            found.append(Reason('key_changed', 'the CSR carries a different key'))
    elif current.key_status == KEY_ENDPOINT:
        found.append(Reason('key_source_changed', 'the current key came from a CSR; the CA is now asked to '
                                                  'generate one'))
    elif current.key_type != wanted.key_type:
        found.append(Reason('key_type_changed', 'key type differs: %s -> %s' % (current.key_type, wanted.key_type)))
    return found


@dataclass
class Signer:
    """Signs client certificates for one CA. Forked bulk workers receive it through memory."""
    ca_certificate: object
    ca_key: object
    crl_url: str | None = None

    def sign(self, wanted: Wanted, public_key, now: datetime.datetime, *, renews: str | None = None,
             key_held: bool = True, serial: int | None = None) -> tuple:
        """(certificate, record) for ``wanted`` with ``public_key``; ``serial`` is drawn when not given."""
        serial = x509.random_serial_number() if serial is None else serial
        certificate = build_client_certificate(
            ca_certificate=self.ca_certificate, ca_key=self.ca_key, subject_name=subject_to_name(wanted.subject),
            sans=wanted.sans, public_key=public_key, profile=wanted.profile, not_before=now - BACKDATE,
            not_after=now + datetime.timedelta(days=wanted.valid_days), serial=serial, crl_url=self.crl_url)
        record = CertificateRecord(
            serial=format_serial(serial), identity=wanted.identity, subject=wanted.subject,
            subject_text=certificate.subject.rfc4514_string(), sans=certificate_sans(certificate),
            profile=wanted.profile, key_type=wanted.key_type, key_status=KEY_HELD if key_held else KEY_ENDPOINT,
            public_key_sha256=public_key_sha256(public_key), not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc, fingerprint_sha256=fingerprint(certificate),
            fingerprint_sha1=fingerprint(certificate, 'sha1'),
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode('ascii'), issued_at=now,
            is_current=True, renews=renews,
            key_retain_until=(now + datetime.timedelta(days=wanted.key_retention)) if key_held else None)
        return certificate, record


@dataclass
class Issued:
    """A signed certificate on its way into the store."""
    record: CertificateRecord
    wrapped_key: bytes | None
    previous: CertificateRecord | None
    action: str  # issue or renew
    details: dict = field(default_factory=dict)  # extra audit details (reason, request line, ...)


def commit_issued(store: CertificateStore, items: list, now: datetime.datetime) -> None:
    """Supersede, insert, link and audit each of ``items``. Call inside ``store.write()``."""
    for item in items:
        record, previous = item.record, item.previous
        if previous is not None:
            store.supersede(previous.serial, record.serial)
        store.insert(record, item.wrapped_key)
        if previous is not None:
            store.link_renewal(previous.serial, record.serial)
        details = dict(item.details, profile=record.profile, not_after=to_iso(record.not_after),
                       key_status=record.key_status, previous_serial=previous.serial if previous else None)
        store.append_audit(now, item.action, record.identity,
                           [record.serial] + ([previous.serial] if previous else []),
                           'issued' if item.action == 'issue' else 'renewed', details)


def commit_revoked(store: CertificateStore, records: list, now: datetime.datetime, reason: str,
                   details: dict | None = None) -> None:
    """Revoke each record, drop its key (nobody needs the key of a revoked certificate) and audit it.
    Call inside ``store.write()``."""
    for record in records:
        store.revoke(record.serial, now, reason)
        store.drop_key(record.serial, now)
        store.append_audit(now, 'revoke', record.identity, [record.serial], 'revoked',
                           dict(details or {}, reason=reason, was_current=record.is_current,
                                was_pending_revocation=record.pending_revocation))


def superseded(history: list, now: datetime.datetime) -> list:
    """Which of an identity's certificates leave the stores: every one but the current, from the CA's record."""
    return [{'serial': r.serial, 'fingerprint_sha1': r.fingerprint_sha1, 'fingerprint_sha256': r.fingerprint_sha256,
             'status': r.state(now)} for r in history if not r.is_current]
