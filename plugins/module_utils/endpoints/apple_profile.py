# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apple configuration profiles (.mobileconfig) carrying a client identity and its CA (private module_utils).

A profile is an XML property list of type ``Configuration`` whose ``PayloadContent`` holds a
``com.apple.security.pkcs12`` payload (the PKCS#12 bytes, optionally its ``Password``) and a
``com.apple.security.root`` payload (the CA certificate, DER). iPhone, iPad and macOS replace an installed profile
by one with the same top-level ``PayloadIdentifier``; the payload UUIDs here are uuid5 values over a fixed
namespace, the profile identifier, the identity and the payload kind, so a re-issued profile for the same identity
carries the same identifier and UUIDs and replaces the old one.

The profile is not signed (an unsigned profile shows as "Not Verified" when installed by hand; MDMs sign or wrap
it themselves). Signing is out of scope.
"""

from __future__ import annotations

import hashlib
import os
import plistlib
import re
import uuid
from dataclasses import dataclass

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import check_writable_as_self, refuse_symlink
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    SECRET_FILE_MODE, atomic_write, check_dest_folder, file_mode, read_bytes,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import certificate_serial, fingerprint
from ansible_collections.certfleet.pki.plugins.module_utils.x509.issuer import issued_by, issuer_mismatch
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import common_name
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import load_pem_certificate
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pkcs12 import apple_compatible, open_pkcs12

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

# Fixed forever: changing it would change every payload UUID, and devices would keep old and new profiles side by side.
PROFILE_NAMESPACE = uuid.UUID('6f0c2d3e-8a41-5b7c-9d2e-4c1f0a6b8e37')
PKCS12_TYPE = 'com.apple.security.pkcs12'
ROOT_TYPE = 'com.apple.security.root'
ENCRYPTIONS = ('legacy', 'keep')
_IDENTIFIER = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]$|^[A-Za-z0-9]$')


def payload_uuid(identifier: str, identity: str, kind: str) -> str:
    return str(uuid.uuid5(PROFILE_NAMESPACE, '%s\n%s\n%s' % (identifier, identity, kind))).upper()


def profile_identifier(identity: str, prefix: str = 'certfleet.pki') -> str:
    """``prefix.identity`` with characters a reverse-DNS identifier cannot hold replaced (plus a short hash then)."""
    safe = re.sub(r'[^A-Za-z0-9.-]+', '-', identity).strip('-.') or 'identity'
    if safe != identity:
        safe = '%s-%s' % (safe, hashlib.sha256(identity.encode('utf-8')).hexdigest()[:8])
    return '%s.%s' % (prefix, safe)


def build_profile(*, identity: str, identifier: str, pkcs12_data: bytes, certificate, ca=None, password=None,
                  include_password: bool = False, display_name: str | None = None, organization: str | None = None,
                  description: str | None = None) -> dict:
    """The profile as a dict for plistlib (bytes become <data>)."""
    content = [_identity_payload(identity=identity, identifier=identifier, pkcs12_data=pkcs12_data,
                                 certificate=certificate, password=password, include_password=include_password)]
    if ca is not None:
        content.append(_root_payload(identity=identity, identifier=identifier, ca=ca))
    profile = {
        'PayloadContent': content,
        'PayloadDescription': description or 'Installs the client certificate of %s%s.' % (
            identity, ' and the CA that issued it' if ca is not None else ''),
        'PayloadDisplayName': display_name or 'Client certificate for %s' % identity,
        'PayloadIdentifier': identifier,
        'PayloadRemovalDisallowed': False,
        'PayloadType': 'Configuration',
        'PayloadUUID': payload_uuid(identifier, identity, 'Configuration'),
        'PayloadVersion': 1,
    }
    if organization:
        profile['PayloadOrganization'] = organization
    return profile


def _identity_payload(*, identity: str, identifier: str, pkcs12_data: bytes, certificate, password,
                      include_password: bool) -> dict:
    """The com.apple.security.pkcs12 payload: the client certificate with its key."""
    payload = {
        'PayloadCertificateFileName': '%s.p12' % re.sub(r'[^A-Za-z0-9.@_-]+', '-', identity),
        'PayloadContent': pkcs12_data,
        'PayloadDescription': 'Client certificate and private key of %s' % identity,
        'PayloadDisplayName': common_name(certificate.subject, identity),
        'PayloadIdentifier': '%s.pkcs12' % identifier,
        'PayloadType': PKCS12_TYPE,
        'PayloadUUID': payload_uuid(identifier, identity, PKCS12_TYPE),
        'PayloadVersion': 1,
    }
    if include_password:
        payload['Password'] = str(password)
    return payload


def _root_payload(*, identity: str, identifier: str, ca) -> dict:
    """The com.apple.security.root payload: the CA certificate (DER), trusted once the profile is installed."""
    return {
        'PayloadCertificateFileName': 'ca.cer',
        'PayloadContent': ca.public_bytes(serialization.Encoding.DER),
        'PayloadDescription': 'CA that issued the client certificate',
        'PayloadDisplayName': common_name(ca.subject, 'CA'),
        'PayloadIdentifier': '%s.root' % identifier,
        'PayloadType': ROOT_TYPE,
        'PayloadUUID': payload_uuid(identifier, identity, ROOT_TYPE),
        'PayloadVersion': 1,
    }


def serialize_profile(profile: dict) -> bytes:
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def _describe_pkcs12(data: bytes, password) -> dict:
    """What an embedded PKCS#12 holds, compared instead of its bytes (re-encryption changes every byte)."""
    try:
        parsed = pkcs12_lib.open_pkcs12_data(data, password)
    except InputError:
        return {'readable': False}
    certificate = parsed.cert.certificate
    key_matches = (parsed.key.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
                   == certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    try:
        encryption = pkcs12_lib.describe(data)['encryption']
    except InputError:
        encryption = 'unknown'
    return {'readable': True, 'certificate_sha256': fingerprint(certificate), 'key_matches': key_matches,
            'chain_sha256': sorted(fingerprint(c.certificate) for c in parsed.additional_certs),
            'encryption': encryption}


def describe_profile(profile, password) -> dict:
    """A comparable, secret-free digest of a profile: every key but payload bytes, plus what those bytes hold."""
    if not isinstance(profile, dict) or not isinstance(profile.get('PayloadContent'), list):
        return {'readable': False}
    top = {k: v for k, v in profile.items() if k != 'PayloadContent'}
    payloads = []
    for payload in profile['PayloadContent']:
        if not isinstance(payload, dict):
            return {'readable': False}
        entry = {k: v for k, v in payload.items() if k not in ('PayloadContent', 'Password')}
        content = payload.get('PayloadContent')
        if payload.get('PayloadType') == PKCS12_TYPE and isinstance(content, bytes):
            entry['pkcs12'] = _describe_pkcs12(content, password)
            entry['password_included'] = 'Password' in payload
            entry['password_matches'] = payload.get('Password') == (None if 'Password' not in payload
                                                                    else str(password))
        elif payload.get('PayloadType') == ROOT_TYPE and isinstance(content, bytes):
            try:
                entry['certificate_sha256'] = fingerprint(x509.load_der_x509_certificate(content))
            except ValueError:
                entry['certificate_sha256'] = None
        payloads.append(entry)
    return {'readable': True, 'top': top, 'payloads': payloads}


def _differences(before: dict, after: dict) -> list:
    if not before.get('readable'):
        return ['the existing file is not a readable configuration profile']
    reasons = []
    for key in sorted(set(before['top']) | set(after['top'])):
        if before['top'].get(key) != after['top'].get(key):
            reasons.append('%s differs' % key)
    if len(before['payloads']) != len(after['payloads']):
        reasons.append('the payloads differ (%d instead of %d)' % (len(before['payloads']), len(after['payloads'])))
        return reasons
    for old, new in zip(before['payloads'], after['payloads'], strict=True):
        kind = new.get('PayloadType')
        for key in sorted(set(old) | set(new)):
            if old.get(key) == new.get(key):
                continue
            if key == 'pkcs12':
                if not old[key].get('readable'):
                    reasons.append('the embedded PKCS#12 does not open with pkcs12_password')
                elif old[key].get('certificate_sha256') != new[key].get('certificate_sha256'):
                    reasons.append('the embedded certificate is %s, wanted %s' % (
                        old[key].get('certificate_sha256'), new[key].get('certificate_sha256')))
                else:
                    reasons.append('the embedded PKCS#12 differs (%s)' % ', '.join(
                        k for k in sorted(new[key]) if old[key].get(k) != new[key].get(k)))
            elif key in ('password_included', 'password_matches'):
                if 'the embedded password differs' not in reasons:
                    reasons.append('the embedded password differs')
            else:
                reasons.append('%s of the %s payload differs' % (key, kind))
    return reasons


def _summary(digest: dict) -> str:
    if not digest.get('readable'):
        return ''
    lines = ['%s = %s' % (k, digest['top'][k]) for k in sorted(digest['top'])]
    for payload in digest['payloads']:
        detail = payload.get('pkcs12') or {}
        lines.append('payload %s %s %s%s' % (
            payload.get('PayloadType'), payload.get('PayloadUUID'),
            detail.get('certificate_sha256') or payload.get('certificate_sha256') or '',
            ' (password included)' if payload.get('password_included') else ''))
    return '\n'.join(lines) + '\n'


def ensure_apple_profile(*, dest, identity, pkcs12_path, pkcs12_password, ca_certificate=None,
                         include_password=False, display_name=None, organization=None, description=None,
                         identifier=None, identifier_prefix='certfleet.pki', pkcs12_encryption='legacy',
                         check_mode=False) -> dict:
    """Write (or leave) the configuration profile ``dest`` for ``identity``; the result dict of the module."""
    _check_options(dest=dest, identity=identity, pkcs12_encryption=pkcs12_encryption, identifier=identifier,
                   identifier_prefix=identifier_prefix)
    identity = str(identity)
    dest = _resolve_dest(dest)
    material = _open_material(pkcs12_path, pkcs12_password, ca_certificate)
    embedded, warnings = _embedded_pkcs12(material, identity=identity, pkcs12_path=pkcs12_path,
                                          pkcs12_password=pkcs12_password, pkcs12_encryption=pkcs12_encryption)
    effective_identifier = str(identifier) if identifier else profile_identifier(identity, str(identifier_prefix))
    profile = build_profile(identity=identity, identifier=effective_identifier, pkcs12_data=embedded,
                            certificate=material.certificate, ca=material.ca, password=pkcs12_password,
                            include_password=include_password, display_name=display_name,
                            organization=organization, description=description)
    wanted = describe_profile(profile, pkcs12_password)
    before, reasons, rewrite = _compare_with_file(dest, wanted, pkcs12_password)
    changed = bool(reasons)
    if changed and not check_mode:
        _write_profile(dest, profile, rewrite=rewrite)
    result = _profile_result(material, profile, wanted, dest=dest, identifier=effective_identifier,
                             include_password=include_password, before=before, reasons=reasons)
    if warnings:
        result['warnings'] = warnings
    return result


def _check_options(*, dest, identity, pkcs12_encryption, identifier, identifier_prefix) -> None:
    if not dest:
        raise InputError('is required', 'dest')
    if not identity or not str(identity).strip():
        raise InputError('is required', 'identity')
    if pkcs12_encryption not in ENCRYPTIONS:
        raise InputError('must be one of %s' % ', '.join(ENCRYPTIONS), 'pkcs12_encryption')
    if identifier is not None and not _IDENTIFIER.match(str(identifier)):
        raise InputError('%r is not a reverse-DNS identifier (letters, digits, dots and dashes)' % identifier,
                         'identifier')
    if not _IDENTIFIER.match(str(identifier_prefix or '')):
        raise InputError('%r is not a reverse-DNS prefix (letters, digits, dots and dashes)' % identifier_prefix,
                         'identifier_prefix')


def _resolve_dest(dest) -> str:
    """The absolute path of the profile; refused before the PKCS#12 is opened if its folder or a symlink is wrong."""
    dest = os.path.abspath(os.path.expanduser(str(dest)))
    check_dest_folder(dest, 'dest')
    refuse_symlink(dest, 'the profile destination', 'dest')
    return dest


@dataclass(frozen=True)
class _Material:
    """The identity's PKCS#12 (opened and as read) and the CA certificate, checked to belong together."""
    parsed: object
    data: bytes
    certificate: object
    ca: object  # None without ca_certificate


def _open_material(pkcs12_path, pkcs12_password, ca_certificate) -> _Material:
    parsed, data = open_pkcs12(pkcs12_path, pkcs12_password)
    certificate = parsed.cert.certificate
    ca = load_pem_certificate(ca_certificate, 'ca_certificate') if ca_certificate else None
    if ca is not None and not issued_by(certificate, ca):
        raise InputError('the certificate in %s %s' % (pkcs12_path, issuer_mismatch(certificate, ca)), 'ca_certificate')
    return _Material(parsed=parsed, data=data, certificate=certificate, ca=ca)


def _embedded_pkcs12(material: _Material, *, identity: str, pkcs12_path, pkcs12_password,
                     pkcs12_encryption: str) -> tuple:
    """(the PKCS#12 bytes for the profile, warnings): re-encrypted for Apple devices, or kept with a warning."""
    if pkcs12_encryption == 'legacy':
        return pkcs12_lib.repack(material.parsed, pkcs12_password, 'legacy', default_name=identity), []
    warnings = []
    compatible, encryption = apple_compatible(material.data)
    if not compatible:
        warnings.append('%s is encrypted with %s (AES/PBES2); iOS and macOS refuse such PKCS#12 payloads. Use '
                        'pkcs12_encryption: legacy' % (pkcs12_path, encryption))
    return material.data, warnings


def _compare_with_file(dest: str, wanted: dict, password) -> tuple:
    """(digest of the file as it is, reasons to change it, whether its content must be rewritten).

    Digests are compared, not bytes: re-encrypting the PKCS#12 changes every byte of an otherwise equal profile.
    """
    existing = read_bytes(dest)
    if existing is None:
        before = {'readable': False}
        reasons = ['%s does not exist' % dest]
    else:
        try:
            before = describe_profile(plistlib.loads(existing), password)
        except Exception:  # plistlib raises InvalidFileException, ExpatError, ValueError...: not a profile
            before = {'readable': False}
        reasons = _differences(before, wanted)
    rewrite = bool(reasons)
    mode = file_mode(dest)
    if not rewrite and mode != SECRET_FILE_MODE:
        reasons.append('mode is %s, wanted 0600' % (oct(mode)[2:].zfill(4) if mode is not None else 'unknown'))
    return before, reasons, rewrite


def _write_profile(dest: str, profile: dict, *, rewrite: bool) -> None:
    check_writable_as_self(dest, 'the configuration profile', 'dest')
    if rewrite:
        atomic_write(dest, serialize_profile(profile), SECRET_FILE_MODE)
    else:
        os.chmod(dest, SECRET_FILE_MODE)  # the content is right; only the mode was not (it holds a private key)


def _profile_result(material: _Material, profile: dict, wanted: dict, *, dest: str, identifier: str,
                    include_password, before: dict, reasons: list) -> dict:
    certificate, ca = material.certificate, material.ca
    return {
        'changed': bool(reasons), 'dest': dest, 'reasons': reasons,
        'profile_identifier': identifier, 'profile_uuid': profile['PayloadUUID'],
        'payload_uuids': {p['PayloadType']: p['PayloadUUID'] for p in profile['PayloadContent']},
        'fingerprint_sha256': fingerprint(certificate), 'fingerprint_sha1': fingerprint(certificate, 'sha1'),
        'serial': certificate_serial(certificate), 'not_after': to_iso(certificate.not_valid_after_utc),
        'ca_fingerprint_sha256': fingerprint(ca) if ca is not None else None,
        'includes_password': bool(include_password),
        'pkcs12_encryption': wanted['payloads'][0]['pkcs12'].get('encryption'),
        'diff': {'before': _summary(before), 'after': _summary(wanted)},
    }
