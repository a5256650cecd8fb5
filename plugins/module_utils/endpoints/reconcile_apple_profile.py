# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apple configuration profiles as a store of the reconcile call (private module_utils).

A profile file (``identities[].apple_profile_dest``) carries one identity for a device Ansible cannot reach: an
MDM (or another private channel) installs it on an iPhone, iPad or Mac. Installed profiles cannot be read without
the MDM, so the store is the file, and it is put in the state the CA's record says like any other store:

- *present*: the file is a configuration profile whose PKCS#12 payload, opened with the password the profile
  embeds, holds the identity's current certificate (SHA-256 fingerprint) with its key, and whose root payload is
  our CA. Each run's one-time transfer password differs, so the file is read, never compared byte for byte with a
  profile built anew (which would rewrite it on every run).
- *imported*: the file was written from the identity's PKCS#12 (re-packed in the legacy encryption Apple devices
  read, the one-time password embedded), then read again and found present.
- *removed*: the certificate the file held before (superseded, expired, or revoked) is gone with the rewrite; a file
  holding a revoked certificate of our CA that cannot be replaced now is deleted.
- *deferred*: a superseded or expired certificate stays while no PKCS#12 is given to replace it.
- *foreign*: a file holding a certificate another issuer signed is never touched; that is a problem of the store.

A profile is written only for an identity with ``apple_profile_include_password``: the PKCS#12 is protected by a
one-time password nobody else knows, so the profile must carry it (and travel through an MDM), as the deploy role's
``deploy_apple_profile_include_password`` requires. A profile holds one identity, so the host's release rule
(reconcile.py, ``_complete_identities``) counts it only for that identity.

The work runs with the rights of whoever controls the profile's folder (common/owner.py), as
certfleet.pki.apple_profile does; a symlink at the destination is refused.
"""

from __future__ import annotations

import datetime
import os
import plistlib

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    SECRET_FILE_MODE, atomic_write, check_dest_folder, file_mode, read_bytes,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import (
    acting_owner, check_writable_as_self, refuse_symlink, run_as,
)
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.apple_profile import (
    PKCS12_TYPE, ROOT_TYPE, build_profile, profile_identifier, serialize_profile,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import certificate_serial, fingerprint
from ansible_collections.certfleet.pki.plugins.module_utils.x509.issuer import issued_by

try:
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

STORE = 'apple_profile'


def profile_dest(dest, where: str) -> str:
    """The absolute path of a profile, checked before any store is read (its folder exists, no symlink)."""
    path = os.path.abspath(os.path.expanduser(str(dest)))
    check_dest_folder(path, where)
    refuse_symlink(path, 'the configuration profile', where)
    return path


def reconcile_profiles(*, plan, check_mode: bool, now=None) -> list:
    """One store result per identity of ``plan`` with a profile destination, each worked with the rights of the
    profile folder's owner; a failure is that profile's problem."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    results = []
    for wanted in plan.identities:
        if not wanted.apple_profile_dest:
            continue
        try:
            owner = acting_owner(os.path.dirname(wanted.apple_profile_dest))
            outcome = run_as(owner, reconcile_profile, wanted=wanted, plan=plan, check_mode=check_mode, now=now)
            outcome['owner'] = None if owner is None else owner.name
        except CertfleetError as exc:
            outcome = _result(wanted)
            outcome['problems'].append(exc.message)
        results.append(outcome)
    return results


def _result(wanted) -> dict:
    return {'store': STORE, 'path': wanted.apple_profile_dest, 'identity': wanted.identity, 'user': None,
            'exists': False, 'created': False, 'present': [], 'imported': [], 'removed': [], 'deferred': [],
            'foreign': [], 'unclaimed': [], 'missing': [], 'ca_changed': None, 'preferences_changed': False,
            'changed': False, 'problems': []}


def read_profile(path: str, ca) -> dict:
    """What a profile file holds, secret-free: ``state`` is ``absent``, ``unreadable`` (not a profile, or a PKCS#12
    that does not open with the embedded password) or ``read``; then the certificate, whether its key matches,
    whether the CA payload is ``ca``, and the file's mode."""
    data = read_bytes(path)
    if data is None:
        return {'state': 'absent'}
    try:
        profile = plistlib.loads(data)
        payloads = profile['PayloadContent']
        identity = next(p for p in payloads if p.get('PayloadType') == PKCS12_TYPE)
        roots = [p['PayloadContent'] for p in payloads if p.get('PayloadType') == ROOT_TYPE]
        parsed = pkcs12_lib.open_pkcs12_data(identity['PayloadContent'], identity.get('Password'))
    except Exception:  # plistlib, expat, a missing key or a PKCS#12 that does not open: not a profile we can read
        return {'state': 'unreadable', 'mode': file_mode(path)}
    certificate = parsed.cert.certificate
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    key_matches = (parsed.key is not None and parsed.key.public_key().public_bytes(serialization.Encoding.DER, spki)
                   == certificate.public_key().public_bytes(serialization.Encoding.DER, spki))
    ca_der = ca.public_bytes(serialization.Encoding.DER)
    return {'state': 'read', 'certificate': certificate, 'key_matches': key_matches,
            'ca_payload': ca_der in roots, 'mode': file_mode(path)}


def _entry(certificate, **extra) -> dict:
    return dict({'nickname': None, 'serial': certificate_serial(certificate), 'fingerprint_sha256':
                 fingerprint(certificate), 'subject': certificate.subject.rfc4514_string(),
                 'issuer': certificate.issuer.rfc4514_string(),
                 'not_after': certificate.not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}, **extra)


def _why_old(certificate, wanted, plan, now) -> str:
    """Why the certificate of our CA a profile holds is not the identity's current one."""
    if certificate_serial(certificate) in plan.revoked_serials:
        return 'revoked'
    if certificate.not_valid_after_utc < now:
        return 'expired'
    return 'superseded'


def reconcile_profile(*, wanted, plan, check_mode: bool, now) -> dict:
    """Reconcile one profile file (runs with the rights of the folder's owner)."""
    result = _result(wanted)
    path = wanted.apple_profile_dest
    refuse_symlink(path, 'the configuration profile', 'identities.apple_profile_dest')
    ca = plan.ca
    found = read_profile(path, ca)
    result['exists'] = found['state'] != 'absent'
    certificate = found.get('certificate')
    if certificate is not None and not issued_by(certificate, ca):
        result['foreign'].append(_entry(certificate))
        result['problems'].append('%s holds a certificate of another issuer (%s); left as it is'
                                  % (path, certificate.issuer.rfc4514_string()))
        return _with_diff(result, found, found)
    current = (certificate is not None and fingerprint(certificate) == wanted.fingerprint_sha256
               and found['key_matches'] and found['ca_payload'])
    if current:
        result['present'].append(wanted.identity)
        if found['mode'] != SECRET_FILE_MODE:  # it holds a private key: only its owner reads it
            result['changed'] = True
            if not check_mode:
                os.chmod(path, SECRET_FILE_MODE)
        return _with_diff(result, found, found)
    old = None
    if certificate is not None and fingerprint(certificate) != wanted.fingerprint_sha256:
        old = _entry(certificate, identity=wanted.identity, reason=_why_old(certificate, wanted, plan, now))
    if wanted.pkcs12 is None or not wanted.apple_profile_include_password:
        return _not_replaced(result, wanted, found, old, check_mode)
    result['changed'] = True
    result['created'] = not result['exists']
    if check_mode:
        result['imported'].append(wanted.identity)
        result['removed'] += [old] if old else []
        return _with_diff(result, found, {'state': 'read', 'fingerprint': wanted.fingerprint_sha256})
    check_writable_as_self(path, 'the configuration profile', 'identities.apple_profile_dest')
    atomic_write(path, _profile_bytes(wanted, ca), SECRET_FILE_MODE, field='identities.apple_profile_dest')
    after = read_profile(path, ca)
    held = after.get('certificate')
    if held is None or fingerprint(held) != wanted.fingerprint_sha256 or not after['key_matches']:
        result['missing'].append(wanted.identity)
        result['problems'].append('%s was written but does not hold %s (%s) with its key'
                                  % (path, wanted.identity, wanted.fingerprint_sha256))
    else:
        result['imported'].append(wanted.identity)
        result['removed'] += [old] if old else []
    return _with_diff(result, found, after)


def _not_replaced(result: dict, wanted, found: dict, old, check_mode: bool) -> dict:
    """The profile lacks the current certificate and cannot get it now: the identity is missing; a revoked
    certificate of our CA goes with its file, an older one waits for the next run with a PKCS#12."""
    path = wanted.apple_profile_dest
    if wanted.pkcs12 is not None:
        result['problems'].append(
            'cannot write %s for %s: its PKCS#12 is protected by a one-time password nobody else knows, so the '
            'profile must carry it; set apple_profile_include_password and deliver the profile through an MDM'
            % (path, wanted.identity))
    result['missing'].append(wanted.identity)
    if old is not None and old['reason'] == 'revoked':
        result['removed'].append(old)
        result['changed'] = True
        if not check_mode:
            check_writable_as_self(path, 'the configuration profile', 'identities.apple_profile_dest')
            os.unlink(path)
        return _with_diff(result, found, {'state': 'absent'})
    if old is not None:
        result['deferred'].append(old)
    return _with_diff(result, found, found)


def _profile_bytes(wanted, ca) -> bytes:
    """The profile for ``wanted``: its PKCS#12 re-packed in the legacy encryption Apple devices read, under the
    same one-time password, which the profile carries; and our CA as a root payload."""
    try:
        parsed = pkcs12_lib.open_pkcs12_data(wanted.pkcs12, wanted.pkcs12_password)
    except InputError as exc:
        raise InputError('the PKCS#12 of %s: %s' % (wanted.identity, exc.message), 'identities') from None
    embedded = pkcs12_lib.repack(parsed, wanted.pkcs12_password, 'legacy', default_name=wanted.identity)
    profile = build_profile(identity=wanted.identity, identifier=profile_identifier(wanted.identity),
                            pkcs12_data=embedded, certificate=parsed.cert.certificate, ca=ca,
                            password=wanted.pkcs12_password, include_password=True)
    return serialize_profile(profile)


def _line(found: dict) -> str:
    if found['state'] == 'absent':
        return ''
    if found['state'] == 'unreadable':
        return '(not a readable configuration profile)\n'
    if 'fingerprint' in found:
        return '(write) sha256=%s\n' % found['fingerprint'][:16]
    certificate = found['certificate']
    return 'serial=%s sha256=%s%s%s\n' % (certificate_serial(certificate), fingerprint(certificate)[:16],
                                          ' (key)' if found['key_matches'] else '',
                                          ' (CA payload)' if found['ca_payload'] else '')


def _with_diff(result: dict, before: dict, after: dict) -> dict:
    header = '%s %s' % (STORE, result['path'])
    result['diff'] = {'before_header': header, 'after_header': header, 'before': _line(before),
                      'after': _line(after)}
    return result
