# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""macOS keychains driven with /usr/bin/security (private module_utils).

Nothing here has run on a Mac in the development environment (macOS cannot run there). The command lines built
here and the parsers of ``security``'s output are unit-tested against output in the exact format ``security``
prints (tests/unit/plugins/module_utils/endpoints/test_keychain.py cites where each sample comes from); the
GitHub Actions workflow .github/workflows/macos.yml runs them for real on a macOS runner.

Facts this relies on (Apple's SecurityTool source, the security(1) manual of January 2024, public reports):
- ``find-certificate -a -Z -p KEYCHAIN`` prints, for every certificate, ``SHA-256 hash: <64 hex>`` (current
  releases; older ones omit it) and ``SHA-1 hash: <40 hex>``, then the certificate as PEM. The fingerprints are
  computed here from the PEM; the printed ones only cross-check that the output was read right.
- ``find-identity -p ssl-client KEYCHAIN`` (without ``-v``) prints a "Matching identities" section and a "Valid
  identities only" section; rows read ``%3d) <SHA-1> "<label>"`` plus `` (<CSSM error>)`` when the identity does not
  evaluate as valid, for example ``CSSMERR_TP_NOT_TRUSTED`` while its CA is not trusted. Each section ends with
  ``     N identities found`` / ``     N valid identities found``. With ``-v`` only the second section is printed.
- An identity is a certificate whose private key is in the keychain. ``delete-identity -Z SHA1`` removes both,
  ``delete-certificate -Z SHA1`` a certificate alone.
- ``import`` takes the PKCS#12 password only as ``-P`` on its command line (or from a GUI dialog). It rejects
  PKCS#12 files encrypted with AES/PBES2 (OpenSSL 3's and our ``modern`` default) with "MAC verification failed
  during PKCS12 import (wrong password?)", also when the password is right.
- ``unlock-keychain`` without ``-p`` reads the password with getpass(3), which reads stdin when the process has no
  controlling terminal: the runner starts ``security`` in a new session and writes the password to its stdin, so it
  never appears on a command line.
- ``add-trusted-cert`` changes trust settings. Since macOS 11 that needs an authorization in a dialog (an
  administrator's password for the admin domain ``-d``, also for root; the user's password for the user domain);
  without a GUI session it fails, for example with ``SecTrustSettingsSetTrustSettings: errSecInternalComponent``.
- ``set-identity-preference`` stores the preference in the default keychain of the user who runs ``security``;
  ``get-identity-preference`` finds it through that user's keychain search list.
- Over SSH a login keychain is locked; writes then fail with "User interaction is not allowed.".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from secrets import token_hex

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import (
    certificate_serial, certificate_summary, fingerprints, is_marked_ca, normalize_fingerprint,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.issuer import (
    issued_by, issuer_mismatch, refuse_foreign,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import load_pem_certificate
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pkcs12 import apple_compatible, open_pkcs12

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

SECURITY = '/usr/bin/security'
SYSTEM_KEYCHAIN = '/Library/Keychains/System.keychain'
LOGIN_KEYCHAIN = ('Library/Keychains/login.keychain-db', 'Library/Keychains/login.keychain')
# Policy names add-trusted-cert understands for a client CA; "ssl" covers TLS client and server evaluation alike.
TRUST_POLICIES = ('ssl', 'basic', 'smime', 'eap', 'IPSec')
DEFAULT_TRUST_POLICIES = ('ssl', 'basic')
RUN_TIMEOUT = 300

_HASH_LINE = re.compile(r'^SHA-(?P<bits>1|256) hash:\s*(?P<hex>[0-9A-Fa-f]+)\s*$')
_PEM = re.compile(r'-----BEGIN CERTIFICATE-----\s*\n.+?-----END CERTIFICATE-----', re.DOTALL)
_IDENTITY_ROW = re.compile(r'^\s*\d+\)\s+(?P<sha1>[0-9A-Fa-f]{40})\s+"(?P<label>.*)"(?:\s+\((?P<error>[^()]*)\))?\s*$')
_COUNT_LINE = re.compile(r'^\s*(?P<count>\d+)\s+(?P<valid>valid\s+)?identities found\s*$')


class KeychainError(CertfleetError):
    """security refused, or the keychain is not usable."""


def default_runner(args: list, stdin: str | None = None, timeout: int = RUN_TIMEOUT) -> tuple:
    """Run ``security`` without a controlling terminal (new session), optionally feeding ``stdin``."""
    env = dict(os.environ, LC_ALL='C', LANG='C')
    data = None if stdin is None else stdin.encode('utf-8')
    try:
        completed = subprocess.run(args, input=data, stdin=subprocess.DEVNULL if data is None else None,
                                   capture_output=True, env=env, check=False, start_new_session=True,
                                   timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, '', ("certfleet: %s did not finish within %d s; it is probably waiting for a dialog on the Mac's "
                         'screen (a locked keychain asking for its password, or a trust settings confirmation)'
                         % (' '.join(args[:2]), timeout))
    except FileNotFoundError:
        return 127, '', 'certfleet: %s not found (this module runs on macOS only)' % args[0]
    return (completed.returncode, completed.stdout.decode('utf-8', 'replace'),
            completed.stderr.decode('utf-8', 'replace'))


def make_runner(timeout: int = RUN_TIMEOUT):
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise InputError('must be a positive number of seconds, got %r' % (timeout,), 'command_timeout')

    def runner(args: list, stdin: str | None = None) -> tuple:
        return default_runner(args, stdin, timeout)
    return runner


# -- command lines ---------------------------------------------------------------------------------------------
def unlock_command(keychain: str, security: str = SECURITY) -> list:
    """The password goes to stdin (see the module docstring), never on the command line."""
    return [security, 'unlock-keychain', keychain]


def import_command(path: str, keychain: str, password: str, applications=(), non_extractable: bool = False,
                   security: str = SECURITY) -> list:
    args = [security, 'import', path, '-k', keychain, '-f', 'pkcs12', '-P', password]
    if non_extractable:
        args.append('-x')
    for application in applications or ():
        args += ['-T', application]
    return args


def find_certificates_command(keychain: str, security: str = SECURITY) -> list:
    return [security, 'find-certificate', '-a', '-Z', '-p', keychain]


def find_identities_command(keychain: str, policy: str = 'ssl-client', security: str = SECURITY) -> list:
    # Without -v: identities that do not evaluate as valid (CA not trusted yet) are listed too.
    return [security, 'find-identity', '-p', policy, keychain]


def add_trusted_cert_command(ca_path: str, keychain: str, admin: bool, policies=DEFAULT_TRUST_POLICIES,
                             security: str = SECURITY) -> list:
    args = [security, 'add-trusted-cert']
    if admin:
        args.append('-d')
    args += ['-r', 'trustRoot']
    for policy in policies:
        args += ['-p', policy]
    return args + ['-k', keychain, ca_path]


def verify_ca_command(ca_path: str, policy: str, security: str = SECURITY) -> list:
    """Exit status 0 when the CA certificate is trusted as a root for ``policy`` (-l: the leaf is a CA)."""
    args = [security, 'verify-cert', '-c', ca_path, '-l', '-L', '-q', '-p', policy]
    if policy == 'ssl':
        args.append('-C')
    return args


def set_identity_preference_command(sha1: str, service: str, keychain: str, security: str = SECURITY) -> list:
    return [security, 'set-identity-preference', '-Z', sha1, '-s', service, keychain]


def get_identity_preference_command(service: str, security: str = SECURITY) -> list:
    return [security, 'get-identity-preference', '-s', service, '-Z']


def delete_identity_command(sha1: str, keychain: str, security: str = SECURITY) -> list:
    return [security, 'delete-identity', '-Z', sha1, keychain]


def delete_certificate_command(sha1: str, keychain: str, security: str = SECURITY) -> list:
    return [security, 'delete-certificate', '-Z', sha1, keychain]


# -- output parsing ----------------------------------------------------------------------------------------------
@dataclass
class KeychainCertificate:
    certificate: object
    sha1: str
    sha256: str

    @property
    def serial(self) -> str:
        return certificate_serial(self.certificate)

    def is_ca(self) -> bool:
        return is_marked_ca(self.certificate)

    def to_result(self, identity=None) -> dict:
        return dict(certificate_summary(self.certificate), is_ca=self.is_ca(), has_key=identity is not None,
                    valid=identity.valid if identity is not None else None,
                    trust_error=identity.error if identity is not None else None)


def parse_certificates(output: str) -> list:
    """``find-certificate -a -Z -p``: every certificate, its printed hashes checked against its DER."""
    found = []
    printed: dict = {}
    position = 0
    for match in _PEM.finditer(output):
        for line in output[position:match.start()].splitlines():
            hash_match = _HASH_LINE.match(line.strip())
            if hash_match:
                printed[hash_match.group('bits')] = hash_match.group('hex').upper()
        position = match.end()
        try:
            certificate = x509.load_pem_x509_certificate(match.group(0).encode('ascii'))
        except ValueError as exc:
            raise KeychainError('security find-certificate printed a certificate that cannot be read (%s)' % exc,
                                'keychain')
        sha1, sha256 = fingerprints(certificate)
        if printed.get('1', sha1) != sha1 or printed.get('256', sha256) != sha256:
            raise KeychainError('security find-certificate printed hashes that do not match the certificate after '
                                'them (SHA-1 %s, computed %s): unexpected output format' % (printed.get('1'), sha1),
                                'keychain')
        if '1' not in printed:
            raise KeychainError('security find-certificate printed a certificate without its "SHA-1 hash:" line: '
                                'unexpected output format', 'keychain')
        found.append(KeychainCertificate(certificate=certificate, sha1=sha1, sha256=sha256))
        printed = {}
    return found


@dataclass
class KeychainIdentity:
    sha1: str
    label: str
    error: str | None
    valid: bool


def parse_identities(output: str) -> list:
    """``find-identity [-v] -p POLICY``: the identities, each marked valid or not (with the CSSM error)."""
    sections: dict = {'matching': [], 'valid': []}
    counts: dict = {}
    current = None
    for line in output.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith('Policy:') or stripped.startswith('Looking for identities'):
            continue
        if stripped == 'Matching identities':
            current = 'matching'
            continue
        if stripped == 'Valid identities only':
            current = 'valid'
            continue
        count = _COUNT_LINE.match(stripped)
        if count:
            counts['valid' if count.group('valid') else 'matching'] = int(count.group('count'))
            continue
        row = _IDENTITY_ROW.match(line)
        if row:
            sections[current or 'valid'].append(KeychainIdentity(sha1=row.group('sha1').upper(),
                                                                 label=row.group('label'),
                                                                 error=row.group('error'), valid=False))
            continue
        raise KeychainError('security find-identity printed a line this module does not understand: %r' % stripped,
                            'keychain')
    if not counts:
        raise KeychainError('security find-identity printed no "identities found" line: unexpected output format',
                            'keychain')
    for name, expected in counts.items():
        if len(sections[name]) != expected:
            raise KeychainError('security find-identity announced %d %s identities but listed %d: unexpected '
                                'output format' % (expected, name, len(sections[name])), 'keychain')
    valid = {identity.sha1 for identity in sections['valid']}
    listed = sections['matching'] if 'matching' in counts else sections['valid']
    result = []
    seen = set()
    for identity in listed:
        if identity.sha1 in seen:
            continue
        seen.add(identity.sha1)
        identity.valid = identity.sha1 in valid
        result.append(identity)
    return result


def parse_identity_preference(output: str) -> str | None:
    """``get-identity-preference -s URL -Z``: the SHA-1 of the preferred identity's certificate."""
    for line in output.splitlines():
        match = _HASH_LINE.match(line.strip())
        if match and match.group('bits') == '1':
            return match.group('hex').upper()
    return None


_FAILURES = (
    ('User interaction is not allowed', 'keychain_password',
     'the keychain %(keychain)s is locked and cannot ask for its password in a non-interactive session (%(detail)s); '
     'give keychain_password to unlock it for the run, or use keychain: system'),
    ('MAC verification failed during PKCS12 import', 'pkcs12_path',
     'macOS could not open %(file)s although the password was verified (%(detail)s); this is what macOS reports for '
     'a PKCS#12 file encrypted with AES/PBES2: export it with encryption: legacy '
     '(certfleet.pki.client_certificate_export) or leave reencrypt enabled'),
    ('errSecInternalComponent', 'trust_ca',
     'macOS refused to change trust settings without an interactive authorization (%(detail)s); since macOS 11 a '
     "dialog asks for an administrator's (admin domain) or the user's (user domain) password, also for root. Trust "
     'the CA with a configuration profile (certfleet.pki.apple_profile, com.apple.security.root, installed by the '
     'user or an MDM), or set trust_ca: false'),
    ('authorization was denied', 'trust_ca',
     'macOS refused to change trust settings without an interactive authorization (%(detail)s); trust the CA with a '
     'configuration profile (certfleet.pki.apple_profile through an MDM), or set trust_ca: false'),
    ('waiting for a dialog', 'keychain', '%(detail)s'),
    ('could not be found', 'keychain', 'the keychain %(keychain)s or an item in it was not found (%(detail)s)'),
    ('not found (this module runs on macOS only)', 'keychain', '%(detail)s'),
)


def failure(what: str, rc: int, out: str, err: str, *, keychain: str, field: str, file: str = '') -> KeychainError:
    """The error for a failed ``security`` call: known macOS messages get an explanation and the right field."""
    lines = [line.strip() for line in (err or out).strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else 'exit status %d' % rc
    text = err + out
    for needle, needle_field, template in _FAILURES:
        if needle in text:
            return KeychainError('%s: %s' % (what, template % {'keychain': keychain, 'detail': detail,
                                                               'file': file or 'the PKCS#12 file'}), needle_field)
    return KeychainError('%s failed for %s: %s' % (what, keychain, detail), field)


# -- the keychain -------------------------------------------------------------------------------------------------
class _Secrets:
    """A 0700 folder of 0600 files for what security reads from a file; removed on exit."""

    def __enter__(self):
        self.folder = tempfile.mkdtemp(prefix='certfleet-keychain-')
        os.chmod(self.folder, 0o700)
        return self

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        return path

    def __exit__(self, *exc):
        shutil.rmtree(self.folder, ignore_errors=True)


def resolve_keychain(keychain: str, user: str | None = None, euid: int | None = None) -> tuple:
    """(path, kind) for ``login`` (of ``user``), ``system`` or a path. Errors name the parameter."""
    import pwd
    euid = os.geteuid() if euid is None else euid
    name = str(keychain or 'login')
    if name == 'login':
        try:
            entry = pwd.getpwnam(user) if user else pwd.getpwuid(euid)
        except KeyError:
            raise InputError('user %r does not exist on this host' % user, 'user')
        if entry.pw_uid != euid:
            raise InputError('the login keychain of %s must be changed by %s: run the task as that user (become_user: '
                             '%s); identity preferences and trust settings belong to the user who runs security'
                             % (entry.pw_name, entry.pw_name, entry.pw_name), 'user')
        candidates = [os.path.join(entry.pw_dir, relative) for relative in LOGIN_KEYCHAIN]
        path = next((candidate for candidate in candidates if os.path.exists(candidate)), candidates[0])
        kind = 'login'
    elif name == 'system':
        path, kind = SYSTEM_KEYCHAIN, 'system'
    else:
        path, kind = os.path.abspath(os.path.expanduser(name)), 'path'
    if not os.path.isfile(path):
        raise InputError('%s does not exist (give login, system or the path of an existing keychain file)' % path,
                         'keychain')
    return path, kind


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


class Keychain:
    def __init__(self, path: str, kind: str, runner=None, security: str = SECURITY):
        self.path = path
        self.kind = kind
        self.run = runner or default_runner
        self.security = security

    def _call(self, args: list, what: str, field: str = 'keychain', stdin: str | None = None, file: str = '') -> str:
        rc, out, err = self.run(args, stdin) if stdin is not None else self.run(args)
        if rc != 0:
            raise failure(what, rc, out, err, keychain=self.path, field=field, file=file)
        return out

    def unlock(self, password) -> None:
        rc, out, err = self.run(unlock_command(self.path, self.security), str(password) + '\n')
        if rc in (124, 127):  # security is missing, or it waited for something (see default_runner)
            raise failure('unlocking the keychain', rc, out, err, keychain=self.path, field='keychain')
        if rc != 0:
            lines = [line for line in (err or out).strip().splitlines() if line.strip()]
            raise KeychainError('could not unlock %s (%s): wrong password?' % (
                self.path, lines[-1].strip() if lines else 'exit status %d' % rc), 'keychain_password')

    def certificates(self) -> list:
        return parse_certificates(self._call(find_certificates_command(self.path, self.security),
                                             'listing the certificates'))

    def identities(self) -> list:
        return parse_identities(self._call(find_identities_command(self.path, security=self.security),
                                           'listing the identities'))

    def ca_trusted(self, ca_path: str, policies) -> bool:
        for policy in policies:
            rc, _out, _err = self.run(verify_ca_command(ca_path, policy, self.security))
            if rc != 0:
                return False
        return True

    def trust(self, ca_path: str, policies) -> None:
        try:
            self._call(add_trusted_cert_command(ca_path, self.path, self.kind == 'system', policies, self.security),
                       'trusting the CA', 'trust_ca')
        except KeychainError as exc:
            if exc.field == 'trust_ca':
                raise
            # For example a password dialog nobody answers in a GUI session (the run timed out).
            raise KeychainError('%s; trust the CA with a configuration profile (certfleet.pki.apple_profile, through '
                                'an MDM) or set trust_ca: false' % exc.message, 'trust_ca')

    def import_pkcs12(self, path: str, password: str, applications, non_extractable: bool, shown: str) -> None:
        self._call(import_command(path, self.path, password, applications, non_extractable, self.security),
                   'importing %s' % shown, 'pkcs12_path', file=shown)

    def preference(self, service: str) -> str | None:
        rc, out, err = self.run(get_identity_preference_command(service, self.security))
        if rc != 0:
            if 'could not be found' in err + out:
                return None
            raise failure('reading the identity preference for %s' % service, rc, out, err, keychain=self.path,
                          field='identity_preference_urls')
        return parse_identity_preference(out)

    def prefer(self, sha1: str, service: str) -> None:
        self._call(set_identity_preference_command(sha1, service, self.path, self.security),
                   'setting the identity preference for %s' % service, 'identity_preference_urls')

    def delete(self, sha1: str, with_key: bool) -> None:
        if with_key:
            self._call(delete_identity_command(sha1, self.path, self.security), 'deleting identity %s' % sha1)
        else:
            self._call(delete_certificate_command(sha1, self.path, self.security), 'deleting certificate %s' % sha1)


def _inventory(keychain: Keychain) -> tuple:
    """(certificates by SHA-1, identities by SHA-1) of the keychain."""
    certificates = {c.sha1: c for c in keychain.certificates()}
    identities = {i.sha1: i for i in keychain.identities()}
    return certificates, identities


def _entries(certificates: dict, identities: dict) -> list:
    entries = [c.to_result(identities.get(sha1)) for sha1, c in certificates.items()]
    for sha1, identity in identities.items():
        if sha1 not in certificates:  # an identity whose certificate find-certificate did not list (other keychain)
            entries.append({'fingerprint_sha1': sha1, 'fingerprint_sha256': None, 'subject': identity.label,
                            'issuer': None, 'serial': None, 'not_before': None, 'not_after': None, 'is_ca': False,
                            'has_key': True, 'valid': identity.valid, 'trust_error': identity.error})
    return sorted(entries, key=lambda e: (e['subject'] or '', e['not_before'] or '', e['fingerprint_sha1']))


def _summary(entries: list) -> str:
    lines = []
    for e in entries:
        lines.append('%s sha1=%s serial=%s not_after=%s%s\n' % (
            e['subject'], e['fingerprint_sha1'], e['serial'], e['not_after'], ' (key)' if e['has_key'] else ''))
    return ''.join(lines)


def _certificate_result(certificate) -> dict:
    summary = certificate_summary(certificate)
    del summary['not_before']
    return summary


def _validate_applications(applications) -> list:
    result = []
    for application in _as_list(applications):
        text = str(application)
        if not os.path.isabs(text):
            raise InputError('%r is not an absolute path of an application (such as /Applications/Safari.app)'
                             % text, 'access_applications')
        if not os.path.exists(text):
            raise InputError('%s does not exist on this Mac' % text, 'access_applications')
        result.append(text)
    return result


def _validate_policies(policies) -> list:
    result = _as_list(policies) or list(DEFAULT_TRUST_POLICIES)
    for policy in result:
        if policy not in TRUST_POLICIES:
            raise InputError('%r is not one of %s' % (policy, ', '.join(TRUST_POLICIES)), 'trust_policies')
    return result


def _validate_urls(urls) -> list:
    result = []
    for url in _as_list(urls):
        text = str(url).strip()
        if not text or any(c.isspace() for c in text):
            raise InputError('%r is not a service name (a URL such as https://vpn.example.org/, a host name, or '
                             '*.example.org)' % (url,), 'identity_preference_urls')
        result.append(text)
    return result


def ensure_keychain_certificate(*, keychain='login', user=None, keychain_password=None, state='present',
                                pkcs12_path=None, pkcs12_password=None, ca_certificate=None, trust_ca=False,
                                trust_policies=None, identity_preference_urls=None, access_applications=None,
                                non_extractable=False, reencrypt=True, fingerprint_sha1=None, issuer=None,
                                keep_fingerprint_sha1=None, check_mode=False, runner=None, security=SECURITY,
                                euid=None, command_timeout=RUN_TIMEOUT) -> dict:
    """Make a keychain hold (or not hold) a client certificate with its key; the result dict of the module."""
    if state not in ('present', 'absent'):
        raise InputError('must be present or absent', 'state')
    euid = os.geteuid() if euid is None else euid
    runner = runner or make_runner(command_timeout)
    path, kind = resolve_keychain(keychain, user, euid)
    store = Keychain(path, kind, runner, security)

    def require_root() -> None:
        if kind == 'system' and euid != 0:
            raise InputError('changing the System keychain needs root (become: true)', 'keychain')

    if state == 'present':
        request = _PresentRequest(keychain_password=keychain_password, pkcs12_path=pkcs12_path,
                                  pkcs12_password=pkcs12_password, ca_certificate=ca_certificate, trust_ca=trust_ca,
                                  trust_policies=_validate_policies(trust_policies),
                                  urls=_validate_urls(identity_preference_urls),
                                  applications=_validate_applications(access_applications),
                                  non_extractable=non_extractable, reencrypt=reencrypt, check_mode=check_mode)
        return _present(store, require_root, request)
    return _absent(store, require_root, keychain_password=keychain_password, fingerprint_sha1=fingerprint_sha1,
                   issuer=issuer, keep_fingerprint_sha1=keep_fingerprint_sha1, check_mode=check_mode)


# -- state=present, in steps: check the options, open the files, plan against the keychain, apply, verify ------------
@dataclass(frozen=True)
class _PresentRequest:
    """The state=present options; policies, URLs and applications already validated."""
    keychain_password: object
    pkcs12_path: str | None
    pkcs12_password: object
    ca_certificate: object
    trust_ca: bool
    trust_policies: list
    urls: list
    applications: list
    non_extractable: bool
    reencrypt: bool
    check_mode: bool


@dataclass(frozen=True)
class _PresentMaterial:
    """The identity and the CA to put in the keychain, opened and cross-checked before the keychain is read."""
    parsed: object  # the opened PKCS#12, None without pkcs12_path
    certificate: object  # its certificate, None without pkcs12_path
    sha1: str | None  # the certificate's SHA-1, how security names it
    ca: object  # None without ca_certificate


@dataclass(frozen=True)
class _PresentPlan:
    """What the keychain lacks; decided before anything changes, so check mode reports the same."""
    trust_needed: bool
    import_needed: bool
    stray: bool  # the certificate is there without its key: it is deleted before the import
    preferences_before: dict
    preference_changes: list
    reasons: list

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


def _present(store: Keychain, require_root, request: _PresentRequest) -> dict:
    _check_present_request(request)
    material = _open_present_material(request)
    if request.keychain_password:
        store.unlock(request.keychain_password)  # also in check mode: it changes no item, and reads may need it
    certificates, identities = _inventory(store)
    before = _entries(certificates, identities)
    with _Secrets() as secrets:
        ca = material.ca
        ca_path = secrets.write('ca.pem', ca.public_bytes(serialization.Encoding.PEM)) if ca is not None else None
        plan = _plan_present(store, request, material, certificates=certificates, identities=identities,
                             ca_path=ca_path)
        apply = plan.changed and not request.check_mode
        if apply:
            require_root()
            _apply_present(store, request, material, plan, certificates=certificates, secrets=secrets,
                           ca_path=ca_path)
    if apply:
        after, preferences = _verify_present(store, request.urls, material.sha1)
    else:
        after, preferences = _predict_present(request, material, plan, before)
    return _present_result(store, material, plan, before=before, after=after, preferences=preferences)


def _check_present_request(request: _PresentRequest) -> None:
    """Refuse option combinations that cannot work, before any file or the keychain is read."""
    if not request.pkcs12_path and not request.ca_certificate:
        raise InputError('state=present needs pkcs12_path (with pkcs12_password) or ca_certificate', 'pkcs12_path')
    if request.urls and not request.pkcs12_path:
        raise InputError('identity preferences need the identity: give pkcs12_path', 'identity_preference_urls')
    if request.trust_ca and not request.ca_certificate:
        raise InputError('trust_ca needs ca_certificate', 'ca_certificate')


def _open_present_material(request: _PresentRequest) -> _PresentMaterial:
    """Open the PKCS#12 and the CA; refuse a file macOS cannot import and a CA that did not issue the certificate."""
    parsed = certificate = None
    if request.pkcs12_path:
        parsed, data = open_pkcs12(request.pkcs12_path, request.pkcs12_password)
        certificate = parsed.cert.certificate
        compatible, encryption = apple_compatible(data)
        if not request.reencrypt and not compatible:
            raise InputError('%s is encrypted with %s (AES/PBES2), which macOS security import rejects as "MAC '
                             'verification failed"; export it with encryption: legacy or leave reencrypt enabled'
                             % (request.pkcs12_path, encryption), 'pkcs12_path')
    ca = load_pem_certificate(request.ca_certificate, 'ca_certificate') if request.ca_certificate else None
    if ca is not None and certificate is not None and not issued_by(certificate, ca):
        raise InputError('the certificate in %s %s' % (request.pkcs12_path, issuer_mismatch(certificate, ca)),
                         'ca_certificate')
    sha1 = fingerprints(certificate)[0] if certificate is not None else None
    return _PresentMaterial(parsed=parsed, certificate=certificate, sha1=sha1, ca=ca)


def _plan_present(store: Keychain, request: _PresentRequest, material: _PresentMaterial, *, certificates: dict,
                  identities: dict, ca_path: str | None) -> _PresentPlan:
    """Compare the keychain with the request: CA trust, the identity, then the identity preferences."""
    reasons = []
    trust_needed = bool(request.trust_ca) and not store.ca_trusted(ca_path, request.trust_policies)
    if trust_needed:
        reasons.append('the CA is not trusted for %s' % ', '.join(request.trust_policies))
    sha1 = material.sha1
    import_needed = sha1 is not None and sha1 not in identities
    if import_needed:
        reasons.append('the keychain does not hold certificate %s with its key' % sha1)
    preferences_before = {url: store.preference(url) for url in request.urls}
    preference_changes = [url for url in request.urls if preferences_before[url] != sha1]
    if preference_changes:
        reasons.append('identity preference to set for %s' % ', '.join(preference_changes))
    return _PresentPlan(trust_needed=trust_needed, import_needed=import_needed,
                        stray=import_needed and sha1 in certificates, preferences_before=preferences_before,
                        preference_changes=preference_changes, reasons=reasons)


def _apply_present(store: Keychain, request: _PresentRequest, material: _PresentMaterial, plan: _PresentPlan, *,
                   certificates: dict, secrets: _Secrets, ca_path: str | None) -> None:
    # Trust first, import next, preferences last: a preference needs the identity in the keychain.
    if plan.trust_needed:
        _trust_ca(store, ca_path, request.trust_policies)
    if plan.import_needed:
        if plan.stray:
            store.delete(material.sha1, with_key=False)
        _import_identity(store, request, material.parsed, certificates=certificates, secrets=secrets)
    for url in plan.preference_changes:
        store.prefer(material.sha1, url)


def _trust_ca(store: Keychain, ca_path: str, policies: list) -> None:
    store.trust(ca_path, policies)
    if not store.ca_trusted(ca_path, policies):
        raise KeychainError('security add-trusted-cert reported success but the CA is still not trusted for %s'
                            % ', '.join(policies), 'trust_ca')


def _import_identity(store: Keychain, request: _PresentRequest, parsed, *, certificates: dict,
                     secrets: _Secrets) -> None:
    shown = os.path.basename(request.pkcs12_path)
    if not request.reencrypt:
        store.import_pkcs12(request.pkcs12_path, str(request.pkcs12_password), request.applications,
                            request.non_extractable, shown)
        return
    # A copy in the legacy encryption macOS reads, under a one-time password: the user's PKCS#12 password never
    # reaches a command line, and AES/PBES2 files import too. CA certificates the keychain holds are left out.
    one_time = token_hex(24)
    chain = [c.certificate for c in parsed.additional_certs if fingerprints(c.certificate)[0] not in certificates]
    copy = pkcs12_lib.repack(parsed, one_time, 'legacy', chain=chain)
    store.import_pkcs12(secrets.write('import.p12', copy), one_time, request.applications, request.non_extractable,
                        shown)


def _verify_present(store: Keychain, urls: list, sha1: str | None) -> tuple:
    """(entries, preferences) read back after the change: security reporting success is not taken on trust."""
    certificates, identities = _inventory(store)
    after = _entries(certificates, identities)
    if sha1 is not None and sha1 not in identities:
        raise KeychainError('security import reported success but %s does not hold certificate %s with its key'
                            % (store.path, sha1), 'keychain')
    preferences = {url: store.preference(url) for url in urls}
    wrong = [url for url in urls if preferences[url] != sha1]
    if wrong:
        raise KeychainError('the identity preference for %s was set, but get-identity-preference finds %s: is %s '
                            'in the keychain search list of this user (security list-keychains)?'
                            % (', '.join(wrong), preferences[wrong[0]], store.path), 'identity_preference_urls')
    return after, preferences


def _predict_present(request: _PresentRequest, material: _PresentMaterial, plan: _PresentPlan,
                     before: list) -> tuple:
    """(entries, preferences) when nothing was changed: as they are, or in check mode as the change would leave them."""
    after = before
    if plan.changed and plan.import_needed:
        after = before + [dict(certificate_summary(material.certificate), is_ca=False, has_key=True, valid=None,
                               trust_error=None)]
    preferences = {url: material.sha1 for url in request.urls} if request.check_mode else plan.preferences_before
    return after, preferences


def _present_result(store: Keychain, material: _PresentMaterial, plan: _PresentPlan, *, before: list, after: list,
                    preferences: dict) -> dict:
    certificate, ca = material.certificate, material.ca
    return {
        'changed': plan.changed, 'keychain': store.path, 'state': 'present', 'reasons': plan.reasons,
        'certificate': _certificate_result(certificate) if certificate is not None else None,
        'imported': material.sha1 if plan.import_needed else None,
        'ca_fingerprint_sha1': fingerprints(ca)[0] if ca is not None else None,
        'ca_trust_changed': plan.trust_needed, 'identity_preferences': preferences,
        'preferences_changed': plan.preference_changes, 'removed': [], 'certificates': after,
        'diff': {'before': _summary(before), 'after': _summary(after)},
    }


def _absent(store: Keychain, require_root, *, keychain_password, fingerprint_sha1, issuer, keep_fingerprint_sha1,
            check_mode) -> dict:
    if not fingerprint_sha1 and not issuer:
        raise InputError('state=absent needs fingerprint_sha1 or issuer', 'fingerprint_sha1')
    wanted = ({normalize_fingerprint(one, 'fingerprint_sha1', 'sha1') for one in _as_list(fingerprint_sha1)}
              if fingerprint_sha1 else None)
    keep = {normalize_fingerprint(k, 'keep_fingerprint_sha1', 'sha1') for k in _as_list(keep_fingerprint_sha1)}
    ca = load_pem_certificate(issuer, 'issuer') if issuer else None
    if keychain_password:
        store.unlock(keychain_password)
    certificates, identities = _inventory(store)
    before = _entries(certificates, identities)
    if wanted:
        targets = [c for sha1, c in certificates.items() if sha1 in wanted]
        if ca is not None:
            refuse_foreign([(c.sha1, c.certificate) for c in targets], ca)
    else:
        targets = [c for c in certificates.values() if not c.is_ca() and issued_by(c.certificate, ca)]
    targets = [c for c in targets if c.sha1 not in keep]
    removed = [c.to_result(identities.get(c.sha1)) for c in targets]
    if targets and not check_mode:
        require_root()
        for target in targets:
            store.delete(target.sha1, with_key=target.sha1 in identities)
        certificates, identities = _inventory(store)
        left = sorted({c.sha1 for c in targets} & (set(certificates) | set(identities)))
        if left:
            raise KeychainError('security reported success but %s still holds %s' % (store.path, ', '.join(left)),
                                'keychain')
        after = _entries(certificates, identities)
    else:
        gone = {c.sha1 for c in targets}
        after = [e for e in before if e['fingerprint_sha1'] not in gone]
    return {
        'changed': bool(targets), 'keychain': store.path, 'state': 'absent',
        'reasons': ['%d certificate(s) to remove' % len(targets)] if targets else [], 'certificate': None,
        'imported': None, 'ca_fingerprint_sha1': fingerprints(ca)[0] if ca is not None else None,
        'ca_trust_changed': False, 'identity_preferences': {}, 'preferences_changed': [], 'removed': removed,
        'certificates': after, 'diff': {'before': _summary(before), 'after': _summary(after)},
    }
