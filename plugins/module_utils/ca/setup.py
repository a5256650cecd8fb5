# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Creating or importing the CA, and keeping its settings (private module_utils): what the ca module calls."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import (
    CERT_FILE, CHAIN_FILE, CRL_DER_FILE, CRL_PEM_FILE, CertificateAuthority, KEY_FILE,
    check_imported_ca, encrypt_key, load_private_key,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import (
    generate_private_key, key_type_of, validate_key_type,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.home import open_home
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keywrap import new_salt
from ansible_collections.certfleet.pki.plugins.module_utils.ca.policy import Policy
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import BACKDATE, build_ca_certificate
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CAError, InputError, PassphraseError, StoreError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import (
    parse_positive_days, to_iso, utcnow,
)
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import CertificateStore
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import open_store, store_name
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import certificate_serial, fingerprint
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import (
    name_to_subject, normalize_subject, subject_to_name,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import load_certificates, read_pem_argument

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

MOVED_TO = 'moved_to'  # meta of an embedded CA moved into a shared store (ca.migrate)
_URL = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://\S+$')


def store_config(store) -> dict:
    return store.get_meta('config', {}) or {}


def ca_store_meta_keys(meta=None) -> list:
    """The meta keys ``open_ca_store`` reads (for a shared store to read them while opening)."""
    return ['ca_fingerprint_sha256', MOVED_TO] + list(meta or ())


def open_ca_store(directory, ca: CertificateAuthority, meta: dict | None = None) -> CertificateStore:
    """The CA's store, refused when it records another CA's fingerprint. ``directory`` is the CA's home.

    ``meta``: keys to read in the same transaction (one round trip less on a shared store); filled with their values.
    """
    store = directory.store if directory.store_url else open_store(ca_path=directory.path)
    try:
        values = store.get_meta_many(ca_store_meta_keys(meta))
        owner, moved_to = values['ca_fingerprint_sha256'], values[MOVED_TO]
        for key in meta or {}:
            meta[key] = values[key]
    except StoreError:
        store.close()
        raise
    if moved_to is not None:
        store.close()
        raise CAError('the CA in %s was moved to the shared store %s on %s; give ca_store (and leave ca_path out) '
                      'to use it there' % (directory.path, moved_to.get('store'), moved_to.get('at')),
                      directory.field, code='ca_moved')
    if owner != fingerprint(ca.certificate):
        store.close()
        raise StoreError('%s belongs to another CA (fingerprint %s, but %s is %s); it is not this CA\'s state'
                         % (store.location, owner, directory.file(CERT_FILE), fingerprint(ca.certificate)),
                         directory.field)
    return store


@dataclass
class CARequest:
    """What the ca module asks for, validated: a new CA (subject, key type, days) or an imported one."""
    passphrase: object
    policy: Policy
    crl_url: str | None
    imported: tuple | None = None  # (certificate, key, chain)
    subject: dict | None = None
    key_type: str = 'rsa3072'
    days: int = 0
    warnings: list = field(default_factory=list)

    @property
    def importing(self) -> bool:
        return self.imported is not None

    @property
    def config(self) -> dict:
        return {'crl_url': self.crl_url, 'policy': self.policy.to_dict()}


def ensure_ca(*, ca_path: str | None = None, store_url: str | None = None, ca_passphrase=None, subject=None,
              key_type: str = 'rsa3072', valid_days=3650, crl_url: str | None = None, policy=None,
              import_certificate=None, import_private_key=None, import_passphrase=None, import_chain=None,
              allow_unencrypted_key: bool = False, check_mode: bool = False, clock=utcnow) -> dict:
    """Create or import the CA, and keep its settings (CRL URL, policy) as given. Idempotent.

    The CA lives in ``ca_path`` (files and the embedded store) or, with ``store_url``, in a shared store.
    """
    directory = open_home(ca_path, store_url)
    try:
        request = _request(directory, ca_passphrase=ca_passphrase, subject=subject, key_type=key_type,
                           valid_days=valid_days, crl_url=crl_url, policy=policy,
                           imported=(import_certificate, import_private_key, import_passphrase, import_chain),
                           allow_unencrypted_key=allow_unencrypted_key, now=clock())
        return _ensure(directory, request, check_mode, clock)
    finally:
        directory.close()


def _request(directory, *, ca_passphrase, subject, key_type, valid_days, crl_url, policy, imported,
             allow_unencrypted_key, now) -> CARequest:
    import_certificate, import_private_key, import_passphrase, import_chain = imported
    request = CARequest(passphrase=ca_passphrase, policy=Policy.from_params(policy), crl_url=_crl_url(crl_url))
    request.warnings = _key_protection(directory, ca_passphrase, allow_unencrypted_key)
    if import_certificate is not None or import_private_key is not None:
        request.imported = _imported(import_certificate, import_private_key, import_passphrase, import_chain, now)
    else:
        request.key_type = validate_key_type(key_type)
        request.days = parse_positive_days(valid_days, 'valid_days')
        request.subject = normalize_subject(subject, 'subject')
        if not request.subject:
            raise InputError('is required to create a CA (for example {CN: Example Client CA, O: Example})',
                             field='subject')
    return request


def _ensure(directory, request: CARequest, check_mode: bool, clock) -> dict:
    now = clock()
    if directory.is_initialised():
        return _update_existing_ca(directory, request, check_mode, now)
    directory.check_parent()  # before check mode returns: the prediction must fail like the real run would
    if check_mode:
        ca = ({'subject': request.imported[0].subject.rfc4514_string()} if request.importing else
              {'subject': subject_to_name(request.subject).rfc4514_string(), 'key_type': request.key_type})
        return dict(_result_base(directory, request), action='imported' if request.importing else 'created',
                    certificate=None, ca=ca)
    directory.prepare()
    with directory.creation_lock():
        if directory.is_initialised():  # another process created it while we waited for the lock
            return _update_existing_ca(directory, request, check_mode, now)
        try:
            action = _create(directory, request, now)
        except StoreError as exc:
            if exc.code != 'store_exists':
                raise
            return _update_existing_ca(directory, request, check_mode, now)  # created on another node meanwhile
    ca = CertificateAuthority.load(directory)
    return dict(_result_base(directory, request), action=action, certificate=ca.certificate_pem(),
                chain=ca.chain_pem(), ca=ca.summary())


def _crl_url(value) -> str | None:
    if value is not None and value != '' and not _URL.match(value):
        raise InputError('%r is not a URL (for example http://pki.example.org/ca.crl)' % value, 'crl_url')
    return value or None


def _key_protection(directory, passphrase, allow_unencrypted_key: bool) -> list:
    """The CA key is encrypted at rest unless allow_unencrypted_key says otherwise; returns the warnings."""
    existing = directory.read(KEY_FILE) if not passphrase and directory.is_initialised() else None
    if b'ENCRYPTED' in (existing or b''):
        raise PassphraseError('the CA key %s is encrypted; give ca_passphrase' % directory.file(KEY_FILE),
                              'ca_passphrase', code='passphrase_missing')
    if not passphrase and not allow_unencrypted_key:
        raise PassphraseError('is required to encrypt the CA key at rest; set allow_unencrypted_key: true to keep '
                              'it unencrypted (not recommended)', 'ca_passphrase')
    if not passphrase:
        return ['The CA key is stored unencrypted (allow_unencrypted_key); anyone who can read %s can issue '
                'certificates' % directory.file(KEY_FILE)]
    return []


def _imported(certificate_arg, key_arg, passphrase, chain_arg, now) -> tuple:
    if certificate_arg is None or key_arg is None:
        raise InputError('import_certificate and import_private_key are required together',
                         'import_certificate' if certificate_arg is None else 'import_private_key')
    certificate = load_certificates(read_pem_argument(certificate_arg, 'import_certificate'),
                                    'import_certificate')[0]
    key = load_private_key(read_pem_argument(key_arg, 'import_private_key'), passphrase, 'import_private_key',
                           'import_passphrase')
    chain = load_certificates(read_pem_argument(chain_arg, 'import_chain'), 'import_chain') if chain_arg else []
    check_imported_ca(certificate, key, chain, now)
    return certificate, key, chain


def _result_base(directory, request: CARequest) -> dict:
    return dict(home_result(directory), changed=True, warnings=request.warnings, policy=request.policy.display(),
                crl_url=request.crl_url)


def home_result(directory) -> dict:
    """Where the CA is, for results: ``ca_path``, or ``ca_store`` without its password."""
    if directory.store_url:
        return {'ca_path': None, 'ca_store': store_name(directory.store_url)}
    return {'ca_path': directory.path, 'ca_store': None}


def _create(directory, request: CARequest, now) -> str:
    """Write the CA's key, certificate and chain, then its store. Returns created or imported."""
    if request.importing:
        certificate, key, chain = request.imported
    else:
        key = generate_private_key(request.key_type)
        certificate = build_ca_certificate(key=key, subject_name=subject_to_name(request.subject),
                                           not_before=now - BACKDATE,
                                           not_after=now + datetime.timedelta(days=request.days),
                                           serial=x509.random_serial_number())
        chain = []
    action = 'imported' if request.importing else 'created'
    # The CA is initialised only once its store is activated, the last step: until then nothing counts.
    store = open_store(ca_path=directory.ca_path, store_url=directory.store_url, create=True)
    try:
        directory.attach(store)
        directory.write_secret(KEY_FILE, encrypt_key(key, request.passphrase))
        directory.write_public(CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM))
        if chain:
            directory.write_public(CHAIN_FILE, b''.join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        directory.clear_before_create([CRL_PEM_FILE, CRL_DER_FILE] + ([] if chain else [CHAIN_FILE]))
        with store.write():
            store.set_meta('ca_fingerprint_sha256', fingerprint(certificate))
            store.set_meta('created_at', to_iso(now))
            store.set_meta('config', request.config)
            store.set_meta('key_wrap_salt', new_salt())
            store.append_audit(now, 'ca_' + action, None, [certificate_serial(certificate)], 'ok',
                               {'subject': certificate.subject.rfc4514_string(),
                                'key_encrypted': bool(request.passphrase), 'policy': request.policy.to_dict(),
                                'crl_url': request.crl_url})
    except BaseException:
        store.discard()
        raise
    store.activate()
    directory.close()  # a shared store's objects are read again from the activated state
    return action


def _update_existing_ca(directory, request: CARequest, check_mode: bool, now) -> dict:
    ca = CertificateAuthority.load(directory)
    ca.unlock(request.passphrase)
    ca.require_valid(now)  # an expired CA cannot be "ensured": say so instead of reporting it as fine
    _refuse_replacement(directory, ca, request)
    store = open_ca_store(directory, ca)
    try:
        with store.read():
            store.check_integrity()  # the CA module is where a damaged store should show first
            config = store_config(store)
        changed = config != request.config
        diff = {'before': _config_display(config), 'after': _config_display(request.config)}
        if changed and not check_mode:
            with store.write():
                store.set_meta('config', request.config)
                store.append_audit(now, 'ca_settings', None, [], 'ok', {'before': config, 'after': request.config})
    finally:
        store.close()
    return dict(home_result(directory), changed=changed, action='updated' if changed else 'none',
                warnings=request.warnings, certificate=ca.certificate_pem(), chain=ca.chain_pem(), ca=ca.summary(),
                policy=request.policy.display(), crl_url=request.crl_url, diff=diff)


def _refuse_replacement(directory, ca: CertificateAuthority, request: CARequest) -> None:
    """An existing CA is never replaced by another certificate, subject or key type."""
    if request.importing:
        if fingerprint(request.imported[0]) != fingerprint(ca.certificate):
            raise CAError('%s already holds another CA (%s); refusing to replace it with the imported certificate'
                          % (directory.path, ca.certificate.subject.rfc4514_string()), 'import_certificate')
        return
    if name_to_subject(ca.certificate.subject) != request.subject:
        raise CAError('%s already holds a CA with subject %s; refusing to replace it with %s (use another '
                      'ca_path for a new CA)' % (directory.path, ca.certificate.subject.rfc4514_string(),
                                                 subject_to_name(request.subject).rfc4514_string()), 'subject')
    existing_type = key_type_of(ca.certificate.public_key(), 'ca')
    if existing_type != request.key_type:
        raise CAError('%s already holds a CA with a %s key; refusing to replace it with a %s key'
                      % (directory.path, existing_type, request.key_type), 'key_type')


def _config_display(config: dict) -> dict:
    policy = Policy.from_dict(config.get('policy'))
    return {'crl_url': config.get('crl_url'), 'policy': policy.display()}
