# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The managed CA's operations: what the CA-facing modules call (private module_utils).

Every operation validates all of its input first, decides from the stored state, and then writes in a single
store transaction that re-reads the state it decided on. Check mode stops after the decision.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

from ansible_collections.certfleet.pki.plugins.module_utils.ca import crl as crl_lib
from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import (
    CADirectory, CERT_FILE, CHAIN_FILE, CRL_DER_FILE, CRL_PEM_FILE, CertificateAuthority, KEY_FILE,
    check_imported_ca, encrypt_key, load_private_key, public_keys_match,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import (
    generate_private_key, key_type_of, validate_key_type,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keywrap import KeyWrapper, new_salt
from ansible_collections.certfleet.pki.plugins.module_utils.ca.policy import Policy
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import (
    BACKDATE, DEFAULT_PROFILE, build_ca_certificate, build_client_certificate, validate_profile,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CAError, InputError, KeyUnavailableError, NotFoundError, PassphraseError, StoreError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    atomic_write, check_dest_folder, file_mode, read_bytes, writing,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import (
    RenewWindow, parse_positive_days, parse_renew_window, to_iso, utcnow,
)
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import (
    CertificateRecord, CertificateStore, KEY_ENDPOINT, KEY_HELD, KEY_PURGED, REVOCATION_REASONS,
)
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import open_store
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import (
    certificate_serial, fingerprint, format_serial, normalize_serial, public_key_sha256,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import (
    certificate_sans, general_names_to_sans, name_to_subject, normalize_sans, normalize_subject, subject_display,
    subject_to_name,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import load_certificates, read_pem_argument

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

WHICH = ('superseded', 'current', 'all')
EXPORT_FORMATS = ('pkcs12', 'pem', 'der')
STATUSES = ('valid', 'revoked', 'expired', 'pending_revocation')
# The BEGIN line of a PEM private key block; the group is the optional kind ("ENCRYPTED ", "EC ", "RSA ", "").
_PEM_KEY_BEGIN = re.compile(rb'-----BEGIN ((?:[A-Z]+ )?)PRIVATE' + rb' KEY-----')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def validate_identity(value, field: str = 'identity') -> str:
    if value is None or not str(value).strip():
        raise InputError('is required and must not be empty', field)
    text = str(value).strip()
    if len(text) > 255 or _CONTROL.search(text):
        raise InputError('must be at most 255 printable characters', field)
    return text


def validate_reason(value, field: str = 'reason') -> str:
    if value not in REVOCATION_REASONS:
        raise InputError('unknown revocation reason %r (use one of %s)' % (value, ', '.join(REVOCATION_REASONS)),
                         field)
    return value


# -- the CA itself ----------------------------------------------------------------------------------------------

def _config(store) -> dict:
    return store.get_meta('config', {}) or {}


def _open_store(directory: CADirectory, ca: CertificateAuthority) -> CertificateStore:
    store = open_store(ca_path=directory.path)
    try:
        with store.read():
            owner = store.get_meta('ca_fingerprint_sha256')
    except StoreError:
        store.close()
        raise
    if owner != fingerprint(ca.certificate):
        store.close()
        raise StoreError('%s belongs to another CA (fingerprint %s, but %s is %s); it is not this CA\'s state'
                         % (store.location, owner, directory.file(CERT_FILE), fingerprint(ca.certificate)),
                         'ca_path')
    return store


def ensure_ca(*, ca_path: str, ca_passphrase=None, subject=None, key_type: str = 'rsa3072', valid_days=3650,
              crl_url: str | None = None, policy=None, import_certificate=None, import_private_key=None,
              import_passphrase=None, import_chain=None, allow_unencrypted_key: bool = False,
              check_mode: bool = False, clock=utcnow) -> dict:
    """Create or import the CA, and keep its settings (CRL URL, policy) as given. Idempotent."""
    directory = CADirectory(ca_path)
    now = clock()
    warnings = []
    wanted_policy = Policy.from_params(policy)
    if crl_url is not None and crl_url != '' and not re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://\S+$', crl_url):
        raise InputError('%r is not a URL (for example http://pki.example.org/ca.crl)' % crl_url, 'crl_url')
    crl_url = crl_url or None
    if not ca_passphrase and b'ENCRYPTED' in (directory.read(KEY_FILE) or b''):
        raise PassphraseError('the CA key %s is encrypted; give ca_passphrase' % directory.file(KEY_FILE),
                              'ca_passphrase', code='passphrase_missing')
    if not ca_passphrase and not allow_unencrypted_key:
        raise PassphraseError('is required to encrypt the CA key at rest; set allow_unencrypted_key: true to keep '
                              'it unencrypted (not recommended)', 'ca_passphrase')
    if not ca_passphrase:
        warnings.append('The CA key is stored unencrypted (allow_unencrypted_key); anyone who can read %s can issue '
                        'certificates' % directory.file(KEY_FILE))
    importing = import_certificate is not None or import_private_key is not None
    if importing and (import_certificate is None or import_private_key is None):
        raise InputError('import_certificate and import_private_key are required together',
                         'import_certificate' if import_certificate is None else 'import_private_key')
    new_subject = None
    imported = None
    if importing:
        certificate = load_certificates(read_pem_argument(import_certificate, 'import_certificate'),
                                        'import_certificate')[0]
        key = load_private_key(read_pem_argument(import_private_key, 'import_private_key'), import_passphrase,
                               'import_private_key', 'import_passphrase')
        chain = []
        if import_chain:
            chain = load_certificates(read_pem_argument(import_chain, 'import_chain'), 'import_chain')
        check_imported_ca(certificate, key, chain, now)
        imported = (certificate, key, chain)
    else:
        validate_key_type(key_type)
        days = parse_positive_days(valid_days, 'valid_days')
        new_subject = normalize_subject(subject, 'subject')
        if not new_subject:
            raise InputError('is required to create a CA (for example {CN: Example Client CA, O: Example})',
                             field='subject')
        subject_name = subject_to_name(new_subject)

    config_wanted = {'crl_url': crl_url, 'policy': wanted_policy.to_dict()}

    if directory.is_initialised():
        return _update_existing_ca(directory, ca_passphrase, config_wanted, wanted_policy, imported, new_subject,
                                   key_type, importing, warnings, check_mode, now)

    result_base = {'changed': True, 'warnings': warnings, 'policy': wanted_policy.display(), 'crl_url': crl_url,
                   'ca_path': directory.path}
    directory.check_parent()  # before check mode returns: the prediction must fail like the real run would
    if check_mode:
        action = 'imported' if importing else 'created'
        return dict(result_base, action=action, certificate=None,
                    ca=({'subject': imported[0].subject.rfc4514_string()} if importing else
                        {'subject': subject_name.rfc4514_string(), 'key_type': key_type}))
    directory.prepare()
    with directory.lock():
        if directory.is_initialised():  # another process created it while we waited for the lock
            return _update_existing_ca(directory, ca_passphrase, config_wanted, wanted_policy, imported, new_subject,
                                       key_type, importing, warnings, check_mode, now)
        if importing:
            certificate, key, chain = imported
            action = 'imported'
        else:
            key = generate_private_key(key_type)
            certificate = build_ca_certificate(key=key, subject_name=subject_name, not_before=now - BACKDATE,
                                               not_after=now + datetime.timedelta(days=days),
                                               serial=x509.random_serial_number())
            chain = []
            action = 'created'
        # The store is written last: a CA directory is initialised only once its state exists.
        directory.write_secret(KEY_FILE, encrypt_key(key, ca_passphrase))
        directory.write_public(CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM))
        if chain:
            directory.write_public(CHAIN_FILE, b''.join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        with writing(directory.path, 'ca_path', 'clean up old files in'):
            for stale in (CRL_PEM_FILE, CRL_DER_FILE, CHAIN_FILE if not chain else None):
                if stale and os.path.exists(directory.file(stale)):
                    os.unlink(directory.file(stale))
        store = open_store(ca_path=directory.path, create=True)
        try:
            with store.write():
                store.set_meta('ca_fingerprint_sha256', fingerprint(certificate))
                store.set_meta('created_at', to_iso(now))
                store.set_meta('config', config_wanted)
                store.set_meta('key_wrap_salt', new_salt())
                store.append_audit(now, 'ca_' + action, None, [certificate_serial(certificate)], 'ok',
                                   {'subject': certificate.subject.rfc4514_string(),
                                    'key_encrypted': bool(ca_passphrase), 'policy': wanted_policy.to_dict(),
                                    'crl_url': crl_url})
        except BaseException:
            store.discard()
            raise
        store.activate()
    ca = CertificateAuthority.load(directory)
    return dict(result_base, action=action, certificate=ca.certificate_pem(), chain=ca.chain_pem(),
                ca=ca.summary())


def _update_existing_ca(directory, ca_passphrase, config_wanted, wanted_policy, imported, new_subject, key_type,
                        importing, warnings, check_mode, now) -> dict:
    ca = CertificateAuthority.load(directory)
    ca.unlock(ca_passphrase)
    ca.require_valid(now)  # an expired CA cannot be "ensured": say so instead of reporting it as fine
    if importing:
        if fingerprint(imported[0]) != fingerprint(ca.certificate):
            raise CAError('%s already holds another CA (%s); refusing to replace it with the imported certificate'
                          % (directory.path, ca.certificate.subject.rfc4514_string()), 'import_certificate')
    else:
        existing = name_to_subject(ca.certificate.subject)
        if existing != new_subject:
            raise CAError('%s already holds a CA with subject %s; refusing to replace it with %s (use another '
                          'ca_path for a new CA)' % (directory.path, ca.certificate.subject.rfc4514_string(),
                                                     subject_to_name(new_subject).rfc4514_string()), 'subject')
        existing_type = key_type_of(ca.certificate.public_key(), 'ca')
        if existing_type != key_type:
            raise CAError('%s already holds a CA with a %s key; refusing to replace it with a %s key'
                          % (directory.path, existing_type, key_type), 'key_type')
    store = _open_store(directory, ca)
    try:
        with store.read():
            store.check_integrity()  # the CA module is where a damaged store should show first
            config = _config(store)
        changed = config != config_wanted
        diff = {'before': _config_display(config), 'after': _config_display(config_wanted)}
        if changed and not check_mode:
            with store.write():
                store.set_meta('config', config_wanted)
                store.append_audit(now, 'ca_settings', None, [], 'ok',
                                   {'before': config, 'after': config_wanted})
    finally:
        store.close()
    return {'changed': changed, 'action': 'updated' if changed else 'none', 'warnings': warnings,
            'certificate': ca.certificate_pem(), 'chain': ca.chain_pem(), 'ca': ca.summary(),
            'policy': wanted_policy.display(), 'crl_url': config_wanted['crl_url'], 'ca_path': directory.path,
            'diff': diff}


def _config_display(config: dict) -> dict:
    policy = Policy.from_dict(config.get('policy'))
    return {'crl_url': config.get('crl_url'), 'policy': policy.display()}


# -- client certificates ----------------------------------------------------------------------------------------

@dataclass
class Wanted:
    identity: str
    subject: dict
    sans: list
    profile: str
    key_type: str
    valid_days: int
    window: RenewWindow
    force: bool
    csr: object = None
    key_retention: int = 30
    email: str | None = None

    def display(self) -> dict:
        return {'identity': self.identity, 'subject': subject_to_name(self.subject).rfc4514_string(),
                'sans': list(self.sans), 'profile': self.profile, 'key_type': self.key_type}


def decide(current: CertificateRecord | None, wanted: Wanted, now: datetime.datetime, had_history: bool = False):
    """Return (action, reasons): action is 'issue', 'renew' or 'none'."""
    if current is None:
        return 'issue', ['no current certificate' + (' (the previous one was revoked)' if had_history else '')]
    reasons = []
    if wanted.force:
        reasons.append('force is set')
    if now >= current.not_after:
        reasons.append('expired at %s' % to_iso(current.not_after))
    else:
        starts = wanted.window.starts_at(current.not_before, current.not_after)
        if now >= starts:
            reasons.append('expires at %s, within renew_before %s' % (to_iso(current.not_after), wanted.window))
    if current.subject != wanted.subject:
        reasons.append('subject differs: %s -> %s' % (current.subject_text,
                                                      subject_to_name(wanted.subject).rfc4514_string()))
    if current.sans != wanted.sans:
        added = sorted(set(wanted.sans) - set(current.sans))
        removed = sorted(set(current.sans) - set(wanted.sans))
        reasons.append('SANs differ: %s' % ', '.join(['+' + s for s in added] + ['-' + s for s in removed]))
    if current.profile != wanted.profile:
        reasons.append('profile differs: %s -> %s' % (current.profile, wanted.profile))
    if wanted.csr is not None:
        if current.public_key_sha256 != public_key_sha256(wanted.csr.public_key()):
            reasons.append('the CSR carries a different key')
    else:
        if current.key_status == KEY_ENDPOINT:
            reasons.append('the current key came from a CSR; the CA is now asked to generate one')
        elif current.key_type != wanted.key_type:
            reasons.append('key type differs: %s -> %s' % (current.key_type, wanted.key_type))
    return ('renew', reasons) if reasons else ('none', [])


class ManagedCA:
    """An opened CA directory with its store. Use as a context manager."""

    def __init__(self, ca_path: str, ca_passphrase=None, clock=utcnow, unlock: bool = True):
        self.directory = CADirectory(ca_path)
        self.clock = clock
        self.authority = CertificateAuthority.load(self.directory)
        if unlock:
            self.authority.unlock(ca_passphrase)
        self.store = _open_store(self.directory, self.authority)
        with self.store.read():
            config = _config(self.store)
            self._salt = self.store.get_meta('key_wrap_salt')
        self.policy = Policy.from_dict(config.get('policy'))
        self.crl_url = config.get('crl_url')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.store.close()

    def _wrapper(self) -> KeyWrapper:
        return KeyWrapper(self.authority.key, self._salt)

    def certificate_result(self, record: CertificateRecord) -> dict:
        return {
            'identity': record.identity,
            'serial': record.serial,
            'subject': record.subject_text,
            'sans': list(record.sans),
            'profile': record.profile,
            'key_type': record.key_type,
            'not_before': to_iso(record.not_before),
            'not_after': to_iso(record.not_after),
            'fingerprint_sha256': record.fingerprint_sha256,
            'fingerprint_sha1': record.fingerprint_sha1,
            'certificate': record.pem,
            'chain': self.authority.chain_pem(),
            'issuer': self.authority.certificate.subject.rfc4514_string(),
            'issuer_cn': self.authority.common_name(),
            'key_status': record.key_status,
            'key_retain_until': to_iso(record.key_retain_until),
        }

    # -- ensure ------------------------------------------------------------------------------------------------
    def build_wanted(self, *, identity, subject=None, email=None, sans=None, profile=DEFAULT_PROFILE,
                     key_type='rsa2048', valid_days=365, renew_before='30d', force=False, csr=None,
                     key_retention=30) -> Wanted:
        identity = validate_identity(identity)
        profile = validate_profile(profile or DEFAULT_PROFILE)
        days = parse_positive_days(valid_days, 'valid_days')
        window = parse_renew_window(renew_before)
        retention = parse_positive_days(key_retention, 'key_retention')
        parsed_subject = normalize_subject(subject, 'subject')
        parsed_sans = normalize_sans(sans, email, 'sans') if sans is not None or email else None
        request = None
        if csr:
            request = _load_csr(csr)
            used_type = key_type_of(request.public_key(), 'csr')
            if not parsed_subject:
                parsed_subject = name_to_subject(request.subject)
                if not parsed_subject:
                    raise InputError('the CSR has an empty subject; give subject', 'subject')
                normalize_subject(subject_display(parsed_subject), 'csr.subject')
            if parsed_sans is None:
                parsed_sans = _csr_sans(request)
        else:
            used_type = validate_key_type(key_type)
        if not parsed_subject:
            raise InputError('is required (at least CN), for example {CN: Alice Example}', field='subject')
        parsed_sans = parsed_sans or []
        parsed_subject = self.policy.complete_subject(parsed_subject)
        self.policy.check_names(parsed_subject, parsed_sans, email=_email_san(email))
        self.policy.check_key_type(used_type, 'csr' if csr else 'key_type')
        now = self.clock()
        self.authority.require_valid(now)  # an expired CA is the reason, not the requested validity
        self.policy.check_validity(days, now + datetime.timedelta(days=days), self.authority.not_after)
        return Wanted(identity=identity, subject=parsed_subject, sans=parsed_sans, profile=profile,
                      key_type=used_type, valid_days=days, window=window, force=bool(force), csr=request,
                      key_retention=retention, email=email)

    def ensure_certificate(self, wanted: Wanted, check_mode: bool = False) -> dict:
        now = self.clock()
        self.authority.require_valid(now)
        with self.store.read():
            current = self.store.current(wanted.identity)
            history = current is None and self.store.identity_has_history(wanted.identity)
        action, reasons = decide(current, wanted, now, history)
        if action == 'none':
            return self._ensure_result(current, 'none', [], None, changed=False)
        if check_mode:
            return self._predicted(current, wanted, action, reasons, now)
        key = None if wanted.csr is not None else generate_private_key(wanted.key_type)
        public_key = wanted.csr.public_key() if wanted.csr is not None else key.public_key()
        with self.store.write():
            self.store.purge_keys(now)
            latest = self.store.current(wanted.identity)
            if (latest and latest.serial) != (current and current.serial):
                # Another process changed this identity while we generated the key: decide again on what is there.
                current = latest
                history = current is None and self.store.identity_has_history(wanted.identity)
                action, reasons = decide(current, wanted, now, history)
                if action == 'none':
                    return self._ensure_result(current, 'none', [], None, changed=False)
            record = self._sign(wanted, public_key, key, now, current)
            if current is not None:
                self.store.supersede(current.serial, record.serial)
            self.store.insert(record, self._wrapper().wrap(key, record.serial) if key is not None else None)
            if current is not None:
                self.store.link_renewal(current.serial, record.serial)
            verb = 'issued' if action == 'issue' else 'renewed'
            self.store.append_audit(now, action, wanted.identity,
                                    [record.serial] + ([current.serial] if current else []), verb,
                                    {'reason': '; '.join(reasons), 'profile': record.profile,
                                     'not_after': to_iso(record.not_after), 'key_status': record.key_status,
                                     'previous_serial': current.serial if current else None})
        return self._ensure_result(record, verb, reasons, current, changed=True)

    def _sign(self, wanted: Wanted, public_key, key, now, current) -> CertificateRecord:
        for _attempt in range(5):
            serial = x509.random_serial_number()
            serial_text = format_serial(serial)
            if not self.store.serial_exists(serial_text):
                break
        else:  # pragma: no cover - 2**-159
            raise StoreError('could not draw an unused serial number')
        certificate = build_client_certificate(
            ca_certificate=self.authority.certificate, ca_key=self.authority.key,
            subject_name=subject_to_name(wanted.subject), sans=wanted.sans, public_key=public_key,
            profile=wanted.profile, not_before=now - BACKDATE,
            not_after=now + datetime.timedelta(days=wanted.valid_days), serial=serial, crl_url=self.crl_url)
        return CertificateRecord(
            serial=serial_text, identity=wanted.identity, subject=wanted.subject,
            subject_text=certificate.subject.rfc4514_string(), sans=certificate_sans(certificate),
            profile=wanted.profile, key_type=wanted.key_type,
            key_status=KEY_HELD if key is not None else KEY_ENDPOINT,
            public_key_sha256=public_key_sha256(public_key), not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc, fingerprint_sha256=fingerprint(certificate),
            fingerprint_sha1=fingerprint(certificate, 'sha1'),
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode('ascii'), issued_at=now,
            is_current=True, renews=current.serial if current else None,
            key_retain_until=(now + datetime.timedelta(days=wanted.key_retention)) if key is not None else None)

    def _ensure_result(self, record, action, reasons, previous, changed) -> dict:
        result = self.certificate_result(record)
        result.update({'changed': changed, 'action': action, 'reason': '; '.join(reasons) or None,
                       'reasons': reasons, 'previous_serial': previous.serial if previous else record.renews})
        if changed:
            before = _diff_view(previous)
            result['diff'] = {'before': before, 'after': _diff_view(record)}
        return result

    def _predicted(self, current, wanted: Wanted, action, reasons, now) -> dict:
        verb = 'issued' if action == 'issue' else 'renewed'
        after = {'identity': wanted.identity, 'serial': '(new)', 'subject': wanted.display()['subject'],
                 'sans': wanted.sans, 'profile': wanted.profile,
                 'not_after': to_iso(now + datetime.timedelta(days=wanted.valid_days))}
        return {'changed': True, 'action': verb, 'reason': '; '.join(reasons), 'reasons': reasons,
                'identity': wanted.identity, 'serial': None, 'previous_serial': current.serial if current else None,
                'subject': after['subject'], 'sans': wanted.sans, 'profile': wanted.profile,
                'key_type': wanted.key_type, 'not_before': None, 'not_after': None, 'fingerprint_sha256': None,
                'fingerprint_sha1': None, 'certificate': None, 'chain': self.authority.chain_pem(),
                'issuer': self.authority.certificate.subject.rfc4514_string(),
                'issuer_cn': self.authority.common_name(),
                'diff': {'before': _diff_view(current), 'after': after}}

    # -- revoke ------------------------------------------------------------------------------------------------
    def revoke(self, *, serial=None, identity=None, which=None, reason='unspecified', check_mode=False) -> dict:
        reason = validate_reason(reason)
        if (serial is None) == (identity is None):
            raise InputError('give either serial or identity (with which)', 'serial' if serial else 'identity')
        if serial is not None:
            serial = normalize_serial(serial)
            if which is not None:
                raise InputError('applies to identity, not to serial', 'which')
        else:
            identity = validate_identity(identity)
            which = which or 'superseded'
            if which not in WHICH:
                raise InputError('unknown value %r (use superseded, current or all)' % which, 'which')
        now = self.clock()

        def select():
            if serial is not None:
                record = self.store.get(serial)
                if record is None:
                    raise NotFoundError('no certificate with serial %s was issued by this CA' % serial, 'serial')
                return [record]
            records = self.store.find(identity=identity)
            if not records:
                raise NotFoundError('no certificate was issued to identity %r' % identity, 'identity')
            if which == 'superseded':
                return [r for r in records if r.pending_revocation and r.status == 'valid']
            if which == 'current':
                return [r for r in records if r.is_current and r.status == 'valid']
            return [r for r in records if r.status == 'valid']

        with self.store.read():
            targets = [r for r in select() if r.status == 'valid']
        if not targets or check_mode:
            already = [serial] if serial is not None and not targets else []
            return {'changed': bool(targets), 'revoked': [r.serial for r in targets], 'already_revoked': already,
                    'reason': reason,
                    'certificates': [dict(r.to_result(now), status='revoked') for r in targets]}
        with self.store.write():
            targets = [r for r in select() if r.status == 'valid']  # re-read under the write lock
            for record in targets:
                self.store.revoke(record.serial, now, reason)
                self.store.drop_key(record.serial, now)  # nobody needs the key of a revoked certificate
                self.store.append_audit(now, 'revoke', record.identity, [record.serial], 'revoked',
                                        {'reason': reason, 'was_current': record.is_current,
                                         'was_pending_revocation': record.pending_revocation})
            revoked = [self.store.get(r.serial) for r in targets]
        return {'changed': bool(targets), 'revoked': [r.serial for r in targets], 'already_revoked': [],
                'reason': reason, 'certificates': [r.to_result(now) for r in revoked]}

    # -- query -------------------------------------------------------------------------------------------------
    def query(self, *, identity=None, serial=None, status=None, expiring_within=None, current_only=False,
              include_certificate=False, include_deployments=False) -> dict:
        if status is not None and status not in STATUSES:
            raise InputError('unknown status %r (use %s)' % (status, ', '.join(STATUSES)), 'status')
        if identity is not None:
            identity = validate_identity(identity)
        serials = [normalize_serial(serial)] if serial is not None else None
        now = self.clock()
        horizon = None
        if expiring_within is not None:
            days = parse_positive_days(expiring_within, 'expiring_within', allow_zero=True)
            horizon = now + datetime.timedelta(days=days)
        with self.store.read():
            records = self.store.find(identity=identity, serials=serials)
            # The identity's whole history, whatever the other filters select: the source of `superseded`.
            history = None
            if identity is not None:
                history = records if serials is None else self.store.find(identity=identity)
            counts = self.store.counts(now)
            deployed = (self.store.deployments([identity] if identity is not None else None)
                        if include_deployments else None)
        selected = []
        for record in records:
            state = record.state(now)
            if status == 'pending_revocation':
                if not (record.pending_revocation and state == 'valid'):
                    continue
            elif status is not None and state != status:
                continue
            if horizon is not None and not (state == 'valid' and record.not_after <= horizon):
                continue
            if current_only and not record.is_current:
                continue
            selected.append(record.to_result(now, include_pem=include_certificate))
        authority = self.authority.summary()
        if include_certificate:
            authority['certificate'] = self.authority.certificate_pem()
        result = {'changed': False, 'certificates': selected, 'count': len(selected), 'totals': counts,
                  'ca': authority}
        if history is not None:
            # Supersede decided once: every certificate of the identity but its current one leaves the stores.
            result['superseded'] = [{'serial': r.serial, 'fingerprint_sha1': r.fingerprint_sha1,
                                     'fingerprint_sha256': r.fingerprint_sha256, 'status': r.state(now)}
                                    for r in history if not r.is_current]
        if deployed is not None:
            # Which host carries which serial, as the deploy role recorded it; the report and revoke playbooks
            # read it. Only the selected certificates' records with a serial or identity filter.
            wanted = {c['serial'] for c in selected}
            result['deployments'] = [d for d in deployed
                                     if (serials is None and status is None and expiring_within is None
                                         and not current_only) or d['serial'] in wanted]
        return result

    # -- plan --------------------------------------------------------------------------------------------------
    def plan(self, requests: list, renew_before='30d') -> dict:
        """Which of many identities need issuing or renewing, or still have a superseded certificate to finish.

        One read of the store for the whole fleet: the nightly run asks this once instead of calling
        client_certificate per identity. ``requests`` are client_certificate parameters (identity, subject, email,
        sans, profile, key_type, renew_before, force); other keys (hosts, stores, ...) are ignored. A request that
        would fail is listed under ``invalid`` with the field and the reason; it does not stop the others.
        """
        if not isinstance(requests, list):
            raise InputError('expected a list of identities (dicts with identity, subject, email, ...)', 'requests')
        now = self.clock()
        self.authority.require_valid(now)
        wanted: dict = {}
        invalid = []
        for index, request in enumerate(requests):
            label = request.get('identity') if isinstance(request, dict) else None
            try:
                if not isinstance(request, dict):
                    raise InputError('expected a dict, got %r' % (request,), 'requests[%d]' % index)
                candidate = self.build_wanted(
                    identity=request.get('identity'), subject=request.get('subject'), email=request.get('email'),
                    sans=request.get('sans'), profile=request.get('profile') or DEFAULT_PROFILE,
                    key_type=request.get('key_type') or 'rsa2048', valid_days=request.get('valid_days') or 365,
                    renew_before=request.get('renew_before') or renew_before, force=request.get('force', False))
            except InputError as exc:
                invalid.append({'identity': label, 'host': request.get('host') if isinstance(request, dict) else None,
                                'field': exc.field, 'msg': exc.message})
                continue
            earlier = wanted.get(candidate.identity)
            if earlier is not None and earlier.display() != candidate.display():
                invalid.append({'identity': candidate.identity, 'host': request.get('host'), 'field': 'identity',
                                'msg': 'identity %r is defined differently in two places (%s vs %s)'
                                       % (candidate.identity, earlier.display(), candidate.display())})
                continue
            wanted[candidate.identity] = candidate
        with self.store.read():
            records = self.store.find(identities=sorted(wanted)) if wanted else []
            deployed = self.store.deployments(sorted(wanted)) if wanted else []
        by_identity: dict = {}
        for record in records:
            by_identity.setdefault(record.identity, []).append(record)
        installed = {(d['identity'], d['host']): d['serial'] for d in deployed}
        carriers: dict = {}
        for request in requests:
            if isinstance(request, dict) and request.get('host') and request.get('identity') in wanted:
                carriers.setdefault(request['identity'], [])
                if request['host'] not in carriers[request['identity']]:
                    carriers[request['identity']].append(request['host'])
        due, pending, up_to_date, work = [], [], [], []
        for identity, candidate in sorted(wanted.items()):
            history = by_identity.get(identity, [])
            current = next((r for r in history if r.is_current), None)
            action, reasons = decide(current, candidate, now, bool(history))
            superseded = [r.serial for r in history if r.pending_revocation and r.status == 'valid']
            hosts = carriers.get(identity, [])
            if action != 'none':
                due.append({'identity': identity, 'action': 'issue' if action == 'issue' else 'renew',
                            'reasons': reasons, 'serial': current.serial if current else None,
                            'not_after': to_iso(current.not_after) if current else None})
                work += [{'identity': identity, 'host': host, 'reason': action} for host in hosts]
                waiting = list(hosts)
            else:
                waiting = [host for host in hosts if installed.get((identity, host)) != current.serial]
                work += [{'identity': identity, 'host': host,
                          'reason': 'deploy' if (identity, host) not in installed else 'replace older serial'}
                         for host in waiting]
            if superseded:
                pending.append({'identity': identity, 'serials': superseded,
                                'current_serial': current.serial if current else None,
                                'waiting_for': waiting, 'ready': action == 'none' and not waiting})
            if action == 'none' and not superseded and not waiting:
                up_to_date.append(identity)
        return {'changed': False, 'due': due, 'pending_revocation': pending, 'up_to_date': up_to_date,
                'work': work, 'invalid': invalid,
                'counts': {'requested': len(requests), 'identities': len(wanted), 'due': len(due),
                           'pending_revocation': len(pending), 'up_to_date': len(up_to_date),
                           'host_work': len(work), 'invalid': len(invalid)}}

    # -- deployments -------------------------------------------------------------------------------------------
    def record_deployments(self, deployments: list, state: str = 'present', check_mode: bool = False) -> dict:
        """Remember which host carries which identity's certificate (the deploy role calls this after verifying)."""
        if state not in ('present', 'absent'):
            raise InputError('must be present or absent', 'state')
        if not isinstance(deployments, list) or not deployments:
            raise InputError('expected a non-empty list of dicts with identity, host, serial and stores', 'deployments')
        entries = []
        for index, entry in enumerate(deployments):
            field = 'deployments[%d]' % index
            if not isinstance(entry, dict):
                raise InputError('expected a dict with identity, host, serial and stores', field)
            identity = validate_identity(entry.get('identity'), field + '.identity')
            host = validate_identity(entry.get('host'), field + '.host')
            serial = normalize_serial(entry.get('serial'), field + '.serial') if state == 'present' else None
            stores = entry.get('stores') or []
            if not isinstance(stores, list):
                raise InputError('expected a list of store names', field + '.stores')
            entries.append((identity, host, serial, [str(x) for x in stores]))
        now = self.clock()
        changed, refused = [], []
        with (self.store.read() if check_mode else self.store.write()):
            for identity, host, serial, stores in entries:
                if state == 'absent':
                    existing = [d for d in self.store.deployments([identity]) if d['host'] == host]
                    if existing and (check_mode or self.store.remove_deployment(identity, host)):
                        changed.append({'identity': identity, 'host': host, 'serial': existing[0]['serial']})
                    continue
                record = self.store.get(serial)
                if record is None or record.identity != identity:
                    raise NotFoundError('certificate %s was not issued to identity %r' % (serial, identity),
                                        'deployments')
                if record.status != 'valid' or not record.is_current:
                    refused.append({'identity': identity, 'host': host, 'serial': serial,
                                    'msg': 'not the current certificate of %s' % identity})
                    continue
                before = [d for d in self.store.deployments([identity]) if d['host'] == host]
                news = not before or before[0]['serial'] != serial or before[0]['stores'] != sorted(stores)
                if news and not check_mode:
                    self.store.record_deployment(identity, host, serial, stores, now)
                    self.store.append_audit(now, 'deploy', identity, [serial], 'recorded',
                                            {'host': host, 'stores': sorted(stores)})
                if news:
                    changed.append({'identity': identity, 'host': host, 'serial': serial})
        return {'changed': bool(changed), 'recorded' if state == 'present' else 'removed': changed,
                'refused': refused}

    # -- export ------------------------------------------------------------------------------------------------
    def export(self, *, serial=None, identity=None, format='pkcs12', dest=None, password=None,
               encryption='modern', friendly_name=None, include_chain=True, include_key=None, iterations=None,
               check_mode=False) -> dict:
        if format not in EXPORT_FORMATS:
            raise InputError('unknown format %r (use pkcs12, pem or der)' % format, 'format')
        if encryption not in pkcs12_lib.ENCRYPTIONS:
            raise InputError('unknown encryption %r (use modern or legacy)' % encryption, 'encryption')
        if not dest:
            raise InputError('is required', 'dest')
        check_dest_folder(dest)
        if include_key is None:
            include_key = format == 'pkcs12'
        if format == 'pkcs12' and not include_key:
            raise InputError('a PKCS#12 export always carries the key; use format pem or der for the certificate '
                             'alone', 'include_key')
        if format == 'der' and include_key:
            raise InputError('DER holds the certificate only', 'include_key')
        if include_key:
            pkcs12_lib.validate_password(password)
        if iterations is not None and iterations < 1000:
            raise InputError('at least 1000 PBKDF2 iterations are required, got %d' % iterations, 'iterations')
        if (serial is None) == (identity is None):
            raise InputError('give either serial or identity', 'serial' if serial else 'identity')
        now = self.clock()
        with self.store.read():
            if serial is not None:
                serial = normalize_serial(serial)
                record = self.store.get(serial)
                if record is None:
                    raise NotFoundError('no certificate with serial %s was issued by this CA' % serial, 'serial')
            else:
                identity = validate_identity(identity)
                record = self.store.current(identity)
                if record is None:
                    raise NotFoundError('identity %r has no current certificate' % identity, 'identity')
            wrapped = self.store.wrapped_key(record.serial) if include_key else None
        if record.status == 'revoked':
            raise InputError('certificate %s was revoked at %s (%s); a revoked certificate is not exported'
                             % (record.serial, to_iso(record.revoked_at), record.revocation_reason),
                             'serial' if serial is not None else 'identity')
        key = None
        if include_key:
            key = self._held_key(record, wrapped, now, 'serial' if serial is not None else 'identity')
        certificate = x509.load_pem_x509_certificate(record.pem.encode('ascii'))
        chain = [self.authority.certificate] + list(self.authority.chain) if include_chain else []
        name = friendly_name or record.identity
        rounds = iterations or pkcs12_lib.DEFAULT_ITERATIONS[encryption]
        wanted = {'format': format, 'fingerprint': record.fingerprint_sha256,
                  'chain': [fingerprint(c) for c in chain], 'key': include_key, 'friendly_name': name,
                  'encryption': encryption if format == 'pkcs12' else None,
                  'iterations': rounds if format == 'pkcs12' else None}
        existing = read_bytes(dest)
        up_to_date = existing is not None and _export_matches(existing, wanted, password, key)
        mode_ok = file_mode(dest) == 0o600
        changed = not (up_to_date and mode_ok)
        result = {'changed': changed, 'dest': dest, 'format': format, 'serial': record.serial,
                  'identity': record.identity, 'fingerprint_sha256': record.fingerprint_sha256,
                  'fingerprint_sha1': record.fingerprint_sha1, 'not_after': to_iso(record.not_after),
                  'encryption': wanted['encryption'], 'iterations': wanted['iterations'],
                  'includes_key': bool(include_key), 'includes_chain': bool(chain)}
        if not changed or check_mode:
            return result
        if up_to_date:
            with writing(dest, 'dest', 'change the mode of'):
                os.chmod(dest, 0o600)
            return result
        if format == 'pkcs12':
            data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=password,
                                        encryption=encryption, friendly_name=name, iterations=rounds)
        elif format == 'pem':
            parts = [certificate.public_bytes(serialization.Encoding.PEM)]
            parts += [c.public_bytes(serialization.Encoding.PEM) for c in chain]
            if key is not None:
                parts.append(encrypt_key(key, password))
            data = b''.join(parts)
        else:
            data = certificate.public_bytes(serialization.Encoding.DER)
        atomic_write(dest, data, 0o600, field='dest')
        with self.store.write():
            self.store.append_audit(now, 'export', record.identity, [record.serial], 'written',
                                    {'format': format, 'dest': os.path.abspath(dest), 'includes_key': bool(key),
                                     'encryption': wanted['encryption']})
        return result

    def _held_key(self, record: CertificateRecord, wrapped, now, field: str):
        if record.key_status == KEY_ENDPOINT:
            raise KeyUnavailableError('certificate %s was issued from a CSR: its private key never left the endpoint '
                                      'and the CA cannot export it' % record.serial, field, code='key_never_held')
        if record.key_status == KEY_PURGED or wrapped is None:
            raise KeyUnavailableError('the private key of certificate %s was purged at %s after its key_retention '
                                      'window; it can no longer be exported (renew with force to get a new one)'
                                      % (record.serial, to_iso(record.key_purged_at) or 'an earlier run'), field,
                                      code='key_purged')
        if record.key_retain_until is not None and now >= record.key_retain_until:
            raise KeyUnavailableError('the retention window of the private key of certificate %s ended at %s; it '
                                      'can no longer be exported and will be purged'
                                      % (record.serial, to_iso(record.key_retain_until)), field, code='key_purged')
        return self._wrapper().unwrap(wrapped, record.serial)

    # -- CRL ---------------------------------------------------------------------------------------------------
    def publish_crl(self, *, dest=None, format='pem', next_update_days=7, check_mode=False) -> dict:
        if format not in ('pem', 'der'):
            raise InputError('unknown format %r (use pem or der)' % format, 'format')
        days = parse_positive_days(next_update_days, 'next_update_days')
        if dest:
            check_dest_folder(dest)
        now = self.clock()
        self.authority.require_valid(now)
        with self.directory.lock():
            with self.store.read():
                self.store.check_integrity()  # a CRL from a damaged store could lack revocations
                entries = self.store.revoked_entries()
                state = self.store.get_meta('crl', {}) or {}
            published = self._published_crl()
            digest = crl_lib.revocation_digest(entries)
            if published is not None:
                missing = crl_lib.crl_serials(published) - {e.serial for e in entries}
                if missing:
                    raise StoreError('the published CRL %s lists %d revoked serial(s) the store does not know as '
                                     'revoked (%s); the store may have been restored from an old backup. Refusing '
                                     'to publish a CRL that would un-revoke them'
                                     % (self.directory.file(CRL_DER_FILE), len(missing),
                                        ', '.join(sorted(missing)[:5])), 'ca_path')
            reasons = []
            if published is None:
                reasons.append('no CRL published yet')
            else:
                if state.get('digest') != digest:
                    reasons.append('revocations changed')
                next_update = published.next_update_utc
                this_update = published.last_update_utc
                if next_update is None or now >= next_update - (next_update - this_update) / 2:
                    reasons.append('next update is near')
                if state.get('next_update_days') != days:
                    reasons.append('next_update_days changed')
            regenerate = bool(reasons)
            # `published is not None`, not `if published`: a CRL object with no entries is falsy (len() == 0).
            published_number = (crl_lib.crl_number(published) or 0) if published is not None else 0
            number = max(int(state.get('number', 0)), published_number)
            if regenerate:
                number += 1
                if check_mode:
                    crl = None
                else:
                    crl = crl_lib.build_crl(ca_certificate=self.authority.certificate, ca_key=self.authority.key,
                                            entries=entries, number=number, this_update=now - BACKDATE,
                                            next_update=now + datetime.timedelta(days=days))
                    if len(list(crl)) != len(entries):
                        raise StoreError('the CRL would list %d entries but the store has %d revocations'
                                         % (len(list(crl)), len(entries)))
                    self.directory.write_public(CRL_DER_FILE, crl.public_bytes(serialization.Encoding.DER))
                    self.directory.write_public(CRL_PEM_FILE, crl.public_bytes(serialization.Encoding.PEM))
                    with self.store.write():
                        self.store.set_meta('crl', {'number': number, 'digest': digest,
                                                    'this_update': to_iso(crl.last_update_utc),
                                                    'next_update': to_iso(crl.next_update_utc),
                                                    'next_update_days': days})
                        self.store.append_audit(now, 'crl_publish', None, [e.serial for e in entries], 'published',
                                                {'crl_number': number, 'reasons': reasons})
            else:
                crl = published
            dest_changed = False
            if dest:
                if crl is None:
                    dest_changed = True
                else:
                    encoding = serialization.Encoding.PEM if format == 'pem' else serialization.Encoding.DER
                    data = crl.public_bytes(encoding)
                    if read_bytes(dest) != data or file_mode(dest) != 0o644:
                        dest_changed = True
                        if not check_mode:
                            atomic_write(dest, data, 0o644, field='dest')
        return {
            'changed': regenerate or dest_changed, 'regenerated': regenerate, 'reasons': reasons,
            'crl_number': number, 'revoked_count': len(entries), 'dest': dest, 'format': format,
            'this_update': to_iso(crl.last_update_utc) if crl is not None else None,
            'next_update': to_iso(crl.next_update_utc) if crl is not None else None,
            'crl_pem_path': self.directory.file(CRL_PEM_FILE), 'crl_der_path': self.directory.file(CRL_DER_FILE),
        }

    def _published_crl(self):
        data = self.directory.read(CRL_DER_FILE)
        if data is None:
            return None
        try:
            crl = x509.load_der_x509_crl(data)
        except ValueError as exc:
            raise StoreError('the published CRL %s cannot be read (%s)' % (self.directory.file(CRL_DER_FILE), exc),
                             'ca_path')
        if not crl.is_signature_valid(self.authority.certificate.public_key()):
            raise StoreError('the published CRL %s was not signed by this CA' % self.directory.file(CRL_DER_FILE),
                             'ca_path')
        return crl


def _diff_view(record: CertificateRecord | None) -> dict:
    if record is None:
        return {}
    return {'identity': record.identity, 'serial': record.serial, 'subject': record.subject_text,
            'sans': list(record.sans), 'profile': record.profile, 'not_after': to_iso(record.not_after),
            'fingerprint_sha256': record.fingerprint_sha256}


def _email_san(email) -> str | None:
    if not email:
        return None
    local, _at, domain = str(email).strip().rpartition('@')
    return '%s@%s' % (local, domain.lower())


def _load_csr(value):
    data = read_pem_argument(value, 'csr')
    try:
        request = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise InputError('is not a PEM certificate signing request (%s)' % exc, 'csr')
    if not request.is_signature_valid:
        raise InputError('the CSR signature does not verify (damaged or forged request)', 'csr')
    return request


def _csr_sans(request) -> list:
    try:
        extension = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return normalize_sans(general_names_to_sans(extension.value), None, 'csr')


def _export_matches(existing: bytes, wanted: dict, password, key) -> bool:
    """Compare the parsed content of an existing export with what would be written."""
    try:
        if wanted['format'] == 'der':
            certificate = x509.load_der_x509_certificate(existing)
            return fingerprint(certificate) == wanted['fingerprint']
        if wanted['format'] == 'pem':
            certificates = x509.load_pem_x509_certificates(existing)
            if [fingerprint(c) for c in certificates] != [wanted['fingerprint']] + wanted['chain']:
                return False
            key_blocks = _PEM_KEY_BEGIN.findall(existing)
            if bool(key_blocks) != bool(wanted['key']):
                return False
            if key_blocks:
                # Only an encrypted PKCS#8 block is what this module writes; anything else is rewritten.
                if key_blocks != [b'ENCRYPTED ']:
                    return False
                start = _PEM_KEY_BEGIN.search(existing).start()
                loaded = serialization.load_pem_private_key(existing[start:], password=password.encode('utf-8'))
                return public_keys_match(loaded.public_key(), key.public_key())
            return True
        parsed = pkcs12_lib.load(existing, password)
        if parsed is None or parsed.cert is None or parsed.key is None:
            return False
        if fingerprint(parsed.cert.certificate) != wanted['fingerprint']:
            return False
        if not public_keys_match(parsed.key.public_key(), key.public_key()):
            return False
        if [fingerprint(c.certificate) for c in parsed.additional_certs] != wanted['chain']:
            return False
        name = parsed.cert.friendly_name.decode('utf-8') if parsed.cert.friendly_name else None
        if name != wanted['friendly_name']:
            return False
        described = pkcs12_lib.describe(existing)
        return described['encryption'] == wanted['encryption'] and described['iterations'] == wanted['iterations']
    except (ValueError, TypeError, InputError):
        return False
