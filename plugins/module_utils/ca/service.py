# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The managed CA as the CA-facing modules see it: one opened CA directory and its store (private module_utils).

Every operation validates all of its input first, decides from the stored state, and then writes in a single
store transaction that re-reads the state it decided on. Check mode stops after the decision. The rules live in
``lifecycle`` (decide, sign, commit); revocation and CRLs, queries and the plan, deployments and export have
their own files, and the methods below hand over to them.
"""

from __future__ import annotations

import datetime

from ansible_collections.certfleet.pki.plugins.module_utils.ca import (
    batch, deployments as deployments_lib, export as export_lib, pickup as pickup_lib, queries, revocation,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import CertificateAuthority
from ansible_collections.certfleet.pki.plugins.module_utils.ca.home import open_home
from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import (
    csr_sans, email_san, load_csr, validate_identity,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import (
    generate_private_key, key_type_of, validate_key_type,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keywrap import KeyWrapper
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import (
    Decision, Issued, KEY_RETENTION_DAYS, KEY_TYPE, RENEW_BEFORE, Signer, VALID_DAYS, Wanted, commit_issued, decide,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.policy import Policy
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import DEFAULT_PROFILE, validate_profile
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ca_store_meta_keys, open_ca_store
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import (
    parse_positive_days, parse_renew_window, to_iso, utcnow,
)
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import CertificateRecord
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import (
    name_to_subject, normalize_sans, normalize_subject, subject_display,
)


class ManagedCA:
    """An opened CA directory with its store. Use as a context manager."""

    def __init__(self, ca_path: str | None = None, ca_passphrase=None, clock=utcnow, unlock: bool = True, *,
                 store_url: str | None = None, for_identity: str | None = None):
        """``for_identity``: the identity this run decides on first (a module run for one identity); a shared
        store reads its record while the CA's key is unlocked."""
        meta = {'config': None, 'key_wrap_salt': None}
        self.directory = open_home(ca_path, store_url, prefetch_meta=ca_store_meta_keys(meta),
                                   prefetch_identity=for_identity)
        self.clock = clock
        try:
            self.authority = CertificateAuthority.load(self.directory)
            if unlock:
                self.authority.unlock(ca_passphrase)
            self.store = open_ca_store(self.directory, self.authority, meta)
            config = meta['config'] or {}
            self._salt = meta['key_wrap_salt']
        except BaseException:
            self.directory.close()
            raise
        self.policy = Policy.from_dict(config.get('policy'))
        self.crl_url = config.get('crl_url')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.store.close()
        self.directory.close()

    def key_wrapper(self) -> KeyWrapper:
        return KeyWrapper(self.authority.key, self._salt)

    def signer(self) -> Signer:
        return Signer(self.authority.certificate, self.authority.key, self.crl_url)

    def certificate_result(self, record: CertificateRecord) -> dict:
        return {
            'identity': record.identity, 'serial': record.serial, 'subject': record.subject_text,
            'sans': list(record.sans), 'profile': record.profile, 'key_type': record.key_type,
            'not_before': to_iso(record.not_before), 'not_after': to_iso(record.not_after),
            'fingerprint_sha256': record.fingerprint_sha256, 'fingerprint_sha1': record.fingerprint_sha1,
            'certificate': record.pem, 'chain': self.authority.chain_pem(),
            'issuer': self.authority.certificate.subject.rfc4514_string(), 'issuer_cn': self.authority.common_name(),
            'key_status': record.key_status, 'key_retain_until': to_iso(record.key_retain_until),
        }

    # -- one identity's certificate --------------------------------------------------------------------------------
    def build_wanted(self, *, identity, subject=None, email=None, sans=None, profile=DEFAULT_PROFILE,
                     key_type=KEY_TYPE, valid_days=VALID_DAYS, renew_before=RENEW_BEFORE, force=False, csr=None,
                     key_retention=KEY_RETENTION_DAYS, renew=True) -> Wanted:
        """Validate a request against the CA's policy; nothing is read from or written to the store."""
        identity = validate_identity(identity)
        profile = validate_profile(profile or DEFAULT_PROFILE)
        days = parse_positive_days(valid_days, 'valid_days')
        window = parse_renew_window(renew_before)
        retention = parse_positive_days(key_retention, 'key_retention')
        parsed_subject = normalize_subject(subject, 'subject')
        parsed_sans = normalize_sans(sans, email, 'sans') if sans is not None or email else None
        request = None
        if csr:
            request = load_csr(csr)
            used_type = key_type_of(request.public_key(), 'csr')
            if not parsed_subject:
                parsed_subject = name_to_subject(request.subject)
                if not parsed_subject:
                    raise InputError('the CSR has an empty subject; give subject', 'subject')
                normalize_subject(subject_display(parsed_subject), 'csr.subject')
            if parsed_sans is None:
                parsed_sans = csr_sans(request)
        else:
            used_type = validate_key_type(key_type)
        if not parsed_subject:
            raise InputError('is required (at least CN), for example {CN: Alice Example}', field='subject')
        parsed_sans = parsed_sans or []
        parsed_subject = self.policy.complete_subject(parsed_subject)
        self.policy.check_names(parsed_subject, parsed_sans, email=email_san(email))
        self.policy.check_key_type(used_type, 'csr' if csr else 'key_type')
        now = self.clock()
        self.authority.require_valid(now)  # an expired CA is the reason, not the requested validity
        self.policy.check_validity(days, now + datetime.timedelta(days=days), self.authority.not_after)
        return Wanted(identity=identity, subject=parsed_subject, sans=parsed_sans, profile=profile,
                      key_type=used_type, valid_days=days, window=window, force=bool(force), csr=request,
                      key_retention=retention, email=email, renew=bool(renew))

    def decide(self, wanted: Wanted, now: datetime.datetime) -> tuple:
        """(current record or None, Decision) from the store as it is now (one consistent read)."""
        current, history = self.store.current_with_history(wanted.identity)
        return current, decide(current, wanted, now, history)

    def ensure_certificate(self, wanted: Wanted, check_mode: bool = False) -> dict:
        """Issue or renew when ``decide`` says so; otherwise report the current certificate."""
        now = self.clock()
        self.authority.require_valid(now)
        current, decision = self.decide(wanted, now)  # one consistent read: no transaction needed
        if decision.action == 'none':
            return self._ensure_result(current, decision, None, changed=False)
        if check_mode:
            return self._predicted(current, wanted, decision, now)
        key = None if wanted.csr is not None else generate_private_key(wanted.key_type)
        public_key = wanted.csr.public_key() if wanted.csr is not None else key.public_key()
        with self.store.write():
            self.store.purge_keys(now)
            answer = self.store.current_later(wanted.identity)
            # Signed while the store answers (a network store's round trip overlaps the signature). The certificate
            # is only kept if nothing changed meanwhile; otherwise it is dropped unseen and never recorded.
            record = self._sign(wanted, public_key, key is not None, now, current)
            latest = answer()
            if (latest and latest.serial) != (current and current.serial):
                # Another process changed this identity while we generated the key: decide again on what is there.
                current, decision = self.decide(wanted, now)
                if decision.action == 'none':
                    return self._ensure_result(current, decision, None, changed=False)
                record = self._sign(wanted, public_key, key is not None, now, current)
            wrapped = self.key_wrapper().wrap(key, record.serial) if key is not None else None
            commit_issued(self.store, [Issued(record, wrapped, current, decision.action,
                                              {'reason': '; '.join(decision.texts)})], now)
        return self._ensure_result(record, decision, current, changed=True)

    def ensure_certificates(self, wanted_list: list, check_mode: bool = False, *, defaults: dict | None = None) -> dict:
        """Many identities at once (``client_certificate`` with ``certificates``): every entry validated first,
        decided from one read, and every new certificate committed in one write transaction (see ``batch``)."""
        return batch.ensure_certificates(self, wanted_list, check_mode, defaults)

    def _sign(self, wanted: Wanted, public_key, key_held: bool, now, current) -> CertificateRecord:
        # The signer draws 159 random bits, as on the bulk path: the store's unique serial refuses a collision
        # (2**-159 a draw) and the transaction rolls back whole, so no round trip is spent asking first.
        return self.signer().sign(wanted, public_key, now, renews=current.serial if current else None,
                                  key_held=key_held)[1]

    def _ensure_result(self, record, decision: Decision, previous, changed) -> dict:
        result = self.certificate_result(record)
        result.update(decision.to_result())
        result.update({'changed': changed, 'action': _verb(decision.action),
                       'previous_serial': previous.serial if previous else record.renews})
        if changed:
            result['diff'] = {'before': _diff_view(previous), 'after': _diff_view(record)}
        return result

    def _predicted(self, current, wanted: Wanted, decision: Decision, now) -> dict:
        after = {'identity': wanted.identity, 'serial': '(new)', 'subject': wanted.display()['subject'],
                 'sans': wanted.sans, 'profile': wanted.profile,
                 'not_after': to_iso(now + datetime.timedelta(days=wanted.valid_days))}
        return dict(decision.to_result(), **{
            'changed': True, 'action': _verb(decision.action), 'identity': wanted.identity, 'serial': None,
            'previous_serial': current.serial if current else None, 'subject': after['subject'], 'sans': wanted.sans,
            'profile': wanted.profile, 'key_type': wanted.key_type, 'not_before': None, 'not_after': None,
            'fingerprint_sha256': None, 'fingerprint_sha1': None, 'certificate': None,
            'chain': self.authority.chain_pem(), 'issuer': self.authority.certificate.subject.rfc4514_string(),
            'issuer_cn': self.authority.common_name(), 'diff': {'before': _diff_view(current), 'after': after}})

    # -- the other operations, each in its own file ----------------------------------------------------------------
    def revoke(self, **options) -> dict:
        return revocation.revoke(self, **options)

    def revoke_many(self, **options) -> dict:
        return revocation.revoke_many(self, **options)

    def publish_crl(self, **options) -> dict:
        return revocation.publish_crl(self, **options)

    def query(self, **options) -> dict:
        return queries.query(self, **options)

    def plan(self, requests: list, renew_before=RENEW_BEFORE) -> dict:
        return queries.plan(self, requests, renew_before)

    def record_deployments(self, deployments: list, state: str = 'present', check_mode: bool = False) -> dict:
        return deployments_lib.record_deployments(self, deployments, state, check_mode)

    def record_host_audits(self, audits: list, check_mode: bool = False) -> dict:
        return deployments_lib.record_host_audits(self, audits, check_mode)

    def export(self, **options) -> dict:
        return export_lib.export(self, **options)

    def export_many(self, **options) -> dict:
        return export_lib.export_many(self, **options)

    # -- pickups (see ``pickup``) ------------------------------------------------------------------------------------
    def create_pickup(self, **options) -> dict:
        return pickup_lib.create_pickup(self, **options)

    def pickups(self, **options) -> dict:
        return pickup_lib.list_pickups(self, **options)

    def expire_pickups(self, check_mode: bool = False) -> dict:
        return pickup_lib.expire_pickups(self, check_mode)

    def open_pickup(self, token) -> dict:
        return pickup_lib.open_pickup(self, token)

    def check_pickup_pin(self, token, pin, client=None) -> dict:
        return pickup_lib.check_pin(self, token, pin, client)

    def download_pickup(self, token, pin, client=None) -> pickup_lib.PickupDownload:
        return pickup_lib.download(self, token, pin, client)

    def confirm_replacement(self, **options) -> dict:
        return pickup_lib.confirm_replacement(self, **options)


def _verb(action: str) -> str:
    return {'issue': 'issued', 'renew': 'renewed'}.get(action, 'none')


def _diff_view(record: CertificateRecord | None) -> dict:
    if record is None:
        return {}
    return {'identity': record.identity, 'serial': record.serial, 'subject': record.subject_text,
            'sans': list(record.sans), 'profile': record.profile, 'not_after': to_iso(record.not_after),
            'fingerprint_sha256': record.fingerprint_sha256}
