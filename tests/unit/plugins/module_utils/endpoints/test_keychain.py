# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""endpoints.keychain: command lines for macOS `security`, parsing of its output, ensure_keychain_certificate.

macOS cannot run here. What is verified here: the exact argv built for every `security` command, the parsers
against output in the exact format `security` prints, and the decisions of ensure_keychain_certificate against
FakeSecurity, a stand-in that keeps a keychain in memory and prints what `security` prints. Real certificates,
keys and PKCS#12 files are used throughout (made by the managed CA of the other unit tests).

Where the formats come from (every sample below cites one of these):
- [identity_find.c] Apple SecurityTool source, SecurityTool/identity_find.c in the apple-open-source/macos
  repository: printIdentity() prints "%3d) " + SHA-1 in upper-case hex + ' "<label>"' + ' (<CSSM error>)' when
  the trust evaluation fails; do_identity_search_with_policy() prints "\nPolicy: %s\n", "  Matching identities\n",
  "     %d identities found\n\n", "  Valid identities only\n" and "     %d valid identities found\n"; with -v only
  the rows and the last line. The policy name for ssl-client is "SSL (client)".
- [identity_prefs.c] Apple SecurityTool identity_prefs.c (current version, as copied in a public mirror of
  Apple's Security sources): get-identity-preference -Z prints "SHA-256 hash: " + 64 hex, then "SHA-1 hash: "
  + 40 hex ("for compatibility"), then the certificate item's attributes, or the PEM with -p.
- [security.1] security(1) manual, January 17, 2024: find-certificate "-Z Print SHA-256 (and SHA-1) hash of the
  certificate"; the same text appears in `security help find-certificate` quoted in tuist/tuist issue #2109.
  Older SecurityTool/keychain_find.c (apple-open-source/macos) prints only "SHA-1 hash: " before each PEM; the
  parser accepts both. print_buffer_pem() writes 64 base64 characters per line.
- Error texts: "security: SecKeychainItemImport: User interaction is not allowed." (AndrewDryga/vagrant-box-osx
  issue #49); "security: SecKeychainItemImport: MAC verification failed during PKCS12 import (wrong password?)"
  (bitrise-steplib/steps-certificate-and-profile-installer issue #23; solar2d/demo-app-store-automation issue #15,
  where the cause was an OpenSSL 3 AES PKCS#12 and -legacy fixed it); "SecTrustSettingsSetTrustSettings:
  errSecInternalComponent" (actions/runner-images issues #4519 and #4734, macOS 11 runners);
  "security: SecKeychainDelete: The specified keychain could not be found." (solar2d issue #15).
"""

from __future__ import annotations

import base64
import os
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import keychain as kc

PASSWORD = 'transport pass \u00e9'
LOGIN_PASSWORD = 'alice login password'
FAST = 1000

# -- samples copied from real `security` output --------------------------------------------------------------------
# A user's `security find-identity -p codesigning "$HOME/Library/Keychains/login.keychain-db"` in a logged-in
# Terminal, pasted verbatim into a public repository's notes (found with the code search, text "Human-controlled
# identity discovery result"). Layout as in [identity_find.c].
SAMPLE_FIND_IDENTITY_CODESIGNING = '''
Policy: Code Signing
  Matching identities
  1) 4A0DC33BED93719549AF3CC840454A3485997F34 "VoiceInk Local Dev"
  2) 69C2BB0FE6E75589F044A08105D99DBEFC6DCFC5 "Apple Development: realjewlion@gmail.com (687D42QJZ6)"
  3) 96A2580E1E7DFD460580B26097717464407AAB1B "Apple Development: realjewlion@gmail.com (687D42QJZ6)"
  3 identities found

  Valid identities only
  1) 4A0DC33BED93719549AF3CC840454A3485997F34 "VoiceInk Local Dev"
  2) 69C2BB0FE6E75589F044A08105D99DBEFC6DCFC5 "Apple Development: realjewlion@gmail.com (687D42QJZ6)"
  3) 96A2580E1E7DFD460580B26097717464407AAB1B "Apple Development: realjewlion@gmail.com (687D42QJZ6)"
  3 valid identities found
'''

# Rows of `security find-identity -p codesigning` with failed evaluations, non-ASCII labels and a two-digit
# ordinal, from a public Chinese notes file on the security command (found with the code search, text
# "发现可用的证书"; the author prefixed each line with "# ", removed here).
SAMPLE_IDENTITY_ROWS = [
    ('  1) 91CE15DE382D35B0A9AC07F07EE53BB915AE030A "iPhone Developer: Tu Hong (9BEKSZP7YX)" (CSSMERR_TP_CERT_EXPIRED)',
     '91CE15DE382D35B0A9AC07F07EE53BB915AE030A', 'iPhone Developer: Tu Hong (9BEKSZP7YX)', 'CSSMERR_TP_CERT_EXPIRED'),
    ('  4) 5BE46B56EAD05E4A16F02345945F3624AD0203F2 "Xcode Server Builder (2018/10/16 下午2:01:39)" '
     '(CSSMERR_TP_NOT_TRUSTED)',
     '5BE46B56EAD05E4A16F02345945F3624AD0203F2', 'Xcode Server Builder (2018/10/16 下午2:01:39)',
     'CSSMERR_TP_NOT_TRUSTED'),
    ('  5) D841BC21DFB8546A1AA9B951F3FF92D081D7C1C5 "iPhone Developer: crlandpm@163.com (J32N8XTS9Q)" '
     '(CSSMERR_TP_CERT_REVOKED)',
     'D841BC21DFB8546A1AA9B951F3FF92D081D7C1C5', 'iPhone Developer: crlandpm@163.com (J32N8XTS9Q)',
     'CSSMERR_TP_CERT_REVOKED'),
    ('  6) 47A74056396EFBCA3CE9DB17F45E2AE6B116E5B9 "iPhone Developer: 刘 山 (J9HD7DBXX5)" (CSSMERR_TP_CERT_EXPIRED)',
     '47A74056396EFBCA3CE9DB17F45E2AE6B116E5B9', 'iPhone Developer: 刘 山 (J9HD7DBXX5)', 'CSSMERR_TP_CERT_EXPIRED'),
    (' 10) 7AED41190FC02B0E8580D15428F3BA14CBD8F5FD "iPhone Distribution: China Merchants Property Management Co., '
     'Ltd (J5K2TT55WE)" (CSSMERR_TP_CERT_EXPIRED)',
     '7AED41190FC02B0E8580D15428F3BA14CBD8F5FD',
     'iPhone Distribution: China Merchants Property Management Co., Ltd (J5K2TT55WE)', 'CSSMERR_TP_CERT_EXPIRED'),
    ('  1) 8A3544869D91B8C6972E44BC67F344529D359B91 "iPhone Distribution: FooBar GmbH (F2LSBBAR88)"',
     '8A3544869D91B8C6972E44BC67F344529D359B91', 'iPhone Distribution: FooBar GmbH (F2LSBBAR88)', None),
]

# A keychain without identities, both ways: `security find-identity -v -p codesigning` and without -v, as shown in
# a public "Code Signing" how-to (found with the code search, text "Observer that we have no identities").
SAMPLE_NO_IDENTITIES_VALID_ONLY = '     0 valid identities found\n'
SAMPLE_NO_IDENTITIES = '''
Policy: Code Signing
  Matching identities
     0 identities found

  Valid identities only
     0 valid identities found
'''

ERROR_LOCKED = 'security: SecKeychainItemImport: User interaction is not allowed.\n'
ERROR_AES = 'security: SecKeychainItemImport: MAC verification failed during PKCS12 import (wrong password?)\n'
ERROR_TRUST = 'SecTrustSettingsSetTrustSettings: errSecInternalComponent\n'
ERROR_NO_KEYCHAIN = 'security: SecKeychainDelete: The specified keychain could not be found.\n'
ERROR_NO_PREFERENCE = 'security: SecIdentityCopyPreference: The specified item could not be found in the keychain.\n'


def pem_block(der: bytes) -> str:
    """The certificate as print_buffer_pem() writes it: 64 base64 characters per line."""
    body = base64.b64encode(der).decode('ascii')
    return '-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n' % '\n'.join(textwrap.wrap(body, 64))


def find_certificate_output(certificates, with_sha256: bool = True) -> str:
    out = []
    for certificate in certificates:
        der = certificate.public_bytes(serialization.Encoding.DER)
        if with_sha256:
            out.append('SHA-256 hash: %s\n' % certificate.fingerprint(hashes.SHA256()).hex().upper())
        out.append('SHA-1 hash: %s\n' % certificate.fingerprint(hashes.SHA1()).hex().upper())
        out.append(pem_block(der))
    return ''.join(out)


def find_identity_output(rows, policy_name: str = 'SSL (client)', valid_only: bool = False) -> str:
    """rows: [(sha1, label, error or None)] in the layout of [identity_find.c]."""
    def row(index, sha1, label, error):
        return '%3d) %s "%s"%s\n' % (index, sha1, label, ' (%s)' % error if error else '')

    valid = [r for r in rows if r[2] is None]
    lines = [] if valid_only else ['\nPolicy: %s\n' % policy_name, '  Matching identities\n']
    if not valid_only:
        lines += [row(i, *r) for i, r in enumerate(rows, 1)]
        lines.append('     %d identities found\n\n' % len(rows))
        lines.append('  Valid identities only\n')
    lines += [row(i, *r) for i, r in enumerate(valid, 1)]
    lines.append('     %d valid identities found\n' % len(valid))
    return ''.join(lines)


def _common_name(certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value


class FakeSecurity:
    """An in-memory keychain answering the `security` command lines keychain.py builds, in `security`'s formats."""

    READS = {'find-certificate', 'find-identity', 'verify-cert', 'get-identity-preference'}

    def __init__(self, path: str, *, locked: bool = False, login_password: str = LOGIN_PASSWORD,
                 trust_fails: bool = False, with_sha256: bool = True, search_list: bool = True):
        self.path = path
        self.locked = locked
        self.login_password = login_password
        self.trust_fails = trust_fails
        self.with_sha256 = with_sha256
        self.search_list = search_list
        self.certificates: dict = {}  # sha1 -> certificate, in insertion order
        self.keys: set = set()  # sha1 of certificates whose key is in the keychain
        self.trusted: dict = {}  # sha1 of CA -> set of policies
        self.preferences: dict = {}  # service -> sha1
        self.calls: list = []
        self.stdin: list = []

    @staticmethod
    def sha1(certificate) -> str:
        return certificate.fingerprint(hashes.SHA1()).hex().upper()

    def add(self, certificate, key: bool = False) -> None:
        self.certificates[self.sha1(certificate)] = certificate
        if key:
            self.keys.add(self.sha1(certificate))

    @property
    def writes(self) -> list:
        return [c for c in self.calls if c[1] not in self.READS]

    def _trusted_for(self, certificate, policy: str) -> bool:
        for sha1, policies in self.trusted.items():
            ca = self.certificates.get(sha1)
            if ca is not None and policy in policies and kc.issued_by(certificate, ca):
                return True
        return False

    def __call__(self, args: list, stdin: str | None = None):
        assert args[0] == kc.SECURITY
        self.calls.append(list(args))
        self.stdin.append(stdin)
        command, rest = args[1], args[2:]
        handler = getattr(self, 'do_' + command.replace('-', '_'))
        return handler(rest, stdin)

    def _check_keychain(self, path: str):
        if path != self.path:
            return 50, '', 'security: SecKeychainCopySearchList: The specified keychain could not be found.\n'
        return None

    def do_unlock_keychain(self, rest, stdin):
        assert rest == [self.path]
        if stdin is None or stdin.rstrip('\n') != self.login_password:
            return 51, '', ('security: SecKeychainUnlock %s: The user name or passphrase you entered is not '
                            'correct.\n' % self.path)
        self.locked = False
        return 0, '', ''

    def do_find_certificate(self, rest, stdin):
        assert rest[:3] == ['-a', '-Z', '-p']
        return self._check_keychain(rest[3]) or (
            0, find_certificate_output(self.certificates.values(), self.with_sha256), '')

    def do_find_identity(self, rest, stdin):
        assert rest[:2] == ['-p', 'ssl-client'] and '-v' not in rest
        error = self._check_keychain(rest[2])
        if error:
            return error
        rows = []
        for sha1 in self.keys:
            certificate = self.certificates[sha1]
            problem = None if self._trusted_for(certificate, 'ssl') else 'CSSMERR_TP_NOT_TRUSTED'
            rows.append((sha1, _common_name(certificate), problem))
        return 0, find_identity_output(rows), ''

    def do_import(self, rest, stdin):
        path = rest[0]
        options = rest[1:]
        assert options[:4] == ['-k', self.path, '-f', 'pkcs12'] and options[4] == '-P'
        password = options[5]
        if self.locked:
            return 1, '', ERROR_LOCKED
        with open(path, 'rb') as handle:
            data = handle.read()
        if pkcs12_lib.describe(data)['encryption'] != 'legacy':
            return 1, '', ERROR_AES
        try:
            parsed = pkcs12.load_pkcs12(data, password.encode('utf-8'))
        except ValueError:
            return 1, '', ERROR_AES
        if self.sha1(parsed.cert.certificate) in self.certificates:
            return 1, '', 'security: SecKeychainItemImport: The specified item already exists in the keychain.\n'
        self.add(parsed.cert.certificate, key=True)
        for extra in parsed.additional_certs:
            self.certificates.setdefault(self.sha1(extra.certificate), extra.certificate)
        return 0, '1 identity imported.\n', ''

    def do_verify_cert(self, rest, stdin):
        assert rest[0] == '-c' and rest[2:6] == ['-l', '-L', '-q', '-p']
        with open(rest[1], 'rb') as handle:
            ca = x509.load_pem_x509_certificate(handle.read())
        trusted = rest[6] in self.trusted.get(self.sha1(ca), set())
        return (0, '', '') if trusted else (1, '', '')

    def do_add_trusted_cert(self, rest, stdin):
        if self.trust_fails == 'dialog':  # what default_runner returns when security waits for a dialog
            return 124, '', ('certfleet: %s add-trusted-cert did not finish within 300 s; it is probably waiting for '
                             "a dialog on the Mac's screen" % kc.SECURITY)
        if self.trust_fails:
            return 1, '', ERROR_TRUST
        policies = [rest[i + 1] for i, arg in enumerate(rest) if arg == '-p']
        assert rest[rest.index('-k') + 1] == self.path
        with open(rest[-1], 'rb') as handle:
            ca = x509.load_pem_x509_certificate(handle.read())
        self.certificates.setdefault(self.sha1(ca), ca)
        self.trusted.setdefault(self.sha1(ca), set()).update(policies)
        return 0, '', ''

    def do_set_identity_preference(self, rest, stdin):
        assert rest[0] == '-Z' and rest[2] == '-s' and rest[4] == self.path
        if self.locked:
            return 1, '', 'security: SecIdentitySetPreference: User interaction is not allowed.\n'
        if rest[1] not in self.keys:
            return 1, '', 'security: No matching identity found for "%s"\n' % rest[1]
        self.preferences[rest[3]] = rest[1]
        return 0, '', ''

    def do_get_identity_preference(self, rest, stdin):
        assert rest[0] == '-s' and rest[2] == '-Z'
        sha1 = self.preferences.get(rest[1]) if self.search_list else None
        if sha1 is None:
            return 1, '', ERROR_NO_PREFERENCE
        certificate = self.certificates[sha1]
        # [identity_prefs.c]: the two hash lines, then the item's attributes (print_keychain_item_attributes).
        template = ('SHA-256 hash: %s\nSHA-1 hash: %s\nkeychain: "%s"\nversion: 512\nclass: 0x80001000\n'
                    'attributes:\n    "alis"<blob>="%s"\n')
        out = template % (certificate.fingerprint(hashes.SHA256()).hex().upper(), sha1, self.path,
                          _common_name(certificate))
        return 0, out, ''

    def do_delete_identity(self, rest, stdin):
        assert rest[0] == '-Z' and rest[2] == self.path
        if self.locked:
            return 1, '', 'security: SecKeychainItemDelete: User interaction is not allowed.\n'
        if rest[1] not in self.keys:
            return 1, '', 'security: Unable to delete identity: The specified item could not be found.\n'
        self.keys.discard(rest[1])
        del self.certificates[rest[1]]
        return 0, '', ''

    def do_delete_certificate(self, rest, stdin):
        assert rest[0] == '-Z' and rest[2] == self.path
        if rest[1] not in self.certificates:
            return 1, '', 'security: Unable to delete certificate matching "%s"\n' % rest[1]
        del self.certificates[rest[1]]
        return 0, '', ''


# -- fixtures -------------------------------------------------------------------------------------------------------
def _load(path):
    with open(path, 'rb') as handle:
        return x509.load_pem_x509_certificate(handle.read())


@pytest.fixture
def material(ca, tmp_path):
    """A CA, Alice's PKCS#12 in both encryptions, a renewed PKCS#12 and the PEM of the CA."""
    ca.ensure('alice', subject={'CN': 'Alice Example'})
    out = tmp_path / 'out'
    out.mkdir()
    files = {}
    for encryption in ('modern', 'legacy'):
        path = out / ('alice-%s.p12' % encryption)
        ca.export(identity='alice', dest=str(path), password=PASSWORD, encryption=encryption, iterations=FAST)
        files[encryption] = str(path)
    old = pkcs12.load_pkcs12(open(files['legacy'], 'rb').read(), PASSWORD.encode()).cert.certificate
    ca.ensure('alice', subject={'CN': 'Alice Example'}, force=True)
    renewed = out / 'alice-renewed.p12'
    ca.export(identity='alice', dest=str(renewed), password=PASSWORD, encryption='modern', iterations=FAST)
    new = pkcs12.load_pkcs12(renewed.read_bytes(), PASSWORD.encode()).cert.certificate
    keychain = tmp_path / 'login.keychain-db'
    keychain.write_bytes(b'kych')
    return {'ca': _load(ca.file('ca.pem')), 'ca_path': ca.file('ca.pem'), 'old': old, 'new': new,
            'modern': files['modern'], 'legacy': files['legacy'], 'renewed': str(renewed), 'keychain': str(keychain)}


@pytest.fixture
def fake(material):
    return FakeSecurity(material['keychain'])


def ensure(material, fake, **params):
    params.setdefault('keychain', material['keychain'])
    params.setdefault('runner', fake)
    return kc.ensure_keychain_certificate(**params)


def sha1(certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()


# -- command lines --------------------------------------------------------------------------------------------------
def test_command_lines():
    security = kc.SECURITY
    keychain = '/Users/alice/Library/Keychains/login.keychain-db'
    assert kc.unlock_command(keychain) == [security, 'unlock-keychain', keychain]
    assert kc.import_command('/tmp/a.p12', keychain, 'pw') == [
        security, 'import', '/tmp/a.p12', '-k', keychain, '-f', 'pkcs12', '-P', 'pw']
    assert kc.import_command('/tmp/a.p12', keychain, 'pw', ['/Applications/Safari.app', '/usr/bin/curl'], True) == [
        security, 'import', '/tmp/a.p12', '-k', keychain, '-f', 'pkcs12', '-P', 'pw', '-x',
        '-T', '/Applications/Safari.app', '-T', '/usr/bin/curl']
    assert kc.find_certificates_command(keychain) == [security, 'find-certificate', '-a', '-Z', '-p', keychain]
    assert kc.find_identities_command(keychain) == [security, 'find-identity', '-p', 'ssl-client', keychain]
    assert kc.add_trusted_cert_command('/tmp/ca.pem', keychain, admin=False) == [
        security, 'add-trusted-cert', '-r', 'trustRoot', '-p', 'ssl', '-p', 'basic', '-k', keychain, '/tmp/ca.pem']
    assert kc.add_trusted_cert_command('/tmp/ca.pem', kc.SYSTEM_KEYCHAIN, admin=True, policies=['basic']) == [
        security, 'add-trusted-cert', '-d', '-r', 'trustRoot', '-p', 'basic', '-k', kc.SYSTEM_KEYCHAIN,
        '/tmp/ca.pem']
    assert kc.verify_ca_command('/tmp/ca.pem', 'ssl') == [
        security, 'verify-cert', '-c', '/tmp/ca.pem', '-l', '-L', '-q', '-p', 'ssl', '-C']
    assert kc.verify_ca_command('/tmp/ca.pem', 'basic') == [
        security, 'verify-cert', '-c', '/tmp/ca.pem', '-l', '-L', '-q', '-p', 'basic']
    assert kc.set_identity_preference_command('AB' * 20, 'https://vpn.example.org/', keychain) == [
        security, 'set-identity-preference', '-Z', 'AB' * 20, '-s', 'https://vpn.example.org/', keychain]
    assert kc.get_identity_preference_command('https://vpn.example.org/') == [
        security, 'get-identity-preference', '-s', 'https://vpn.example.org/', '-Z']
    assert kc.delete_identity_command('AB' * 20, keychain) == [security, 'delete-identity', '-Z', 'AB' * 20, keychain]
    assert kc.delete_certificate_command('AB' * 20, keychain) == [
        security, 'delete-certificate', '-Z', 'AB' * 20, keychain]


def test_default_runner_feeds_stdin_in_a_new_session(tmp_path):
    script = tmp_path / 'fake-security'
    script.write_text('#!/bin/sh\nread line\nprintf "%s|%s|%s" "$1" "$line" "$(ps -o sid= -p $$ | tr -d " ")"\n')
    script.chmod(0o700)
    rc, out, err = kc.default_runner([str(script), 'unlock-keychain'], 'secret\n')
    assert rc == 0, err
    command, line, sid = out.split('|')
    assert (command, line) == ('unlock-keychain', 'secret')
    assert sid != str(os.getsid(0))  # a session of its own: no controlling terminal, getpass reads stdin
    rc, _out, err = kc.default_runner([str(tmp_path / 'missing')])
    assert rc == 127 and 'macOS only' in err
    rc, _out, err = kc.make_runner(1)(['/bin/sleep', '5'])
    assert rc == 124 and 'waiting for a dialog' in err
    with pytest.raises(InputError) as error:
        kc.make_runner(0)
    assert error.value.field == 'command_timeout'


# -- parsing -------------------------------------------------------------------------------------------------------
def test_parse_identities_of_a_real_sample():
    identities = kc.parse_identities(SAMPLE_FIND_IDENTITY_CODESIGNING)
    assert [(i.sha1, i.valid, i.error) for i in identities] == [
        ('4A0DC33BED93719549AF3CC840454A3485997F34', True, None),
        ('69C2BB0FE6E75589F044A08105D99DBEFC6DCFC5', True, None),
        ('96A2580E1E7DFD460580B26097717464407AAB1B', True, None)]
    assert identities[1].label == 'Apple Development: realjewlion@gmail.com (687D42QJZ6)'


@pytest.mark.parametrize('line, sha1, label, error', SAMPLE_IDENTITY_ROWS)
def test_identity_rows_of_real_samples(line, sha1, label, error):
    identities = kc.parse_identities('\nPolicy: Code Signing\n  Matching identities\n%s\n     1 identities found\n\n'
                                     '  Valid identities only\n     0 valid identities found\n' % line)
    assert [(i.sha1, i.label, i.error, i.valid) for i in identities] == [(sha1, label, error, False)]


@pytest.mark.parametrize('sample', [SAMPLE_NO_IDENTITIES_VALID_ONLY, SAMPLE_NO_IDENTITIES])
def test_parse_no_identities(sample):
    assert kc.parse_identities(sample) == []


def test_parse_identities_valid_only_and_untrusted(material):
    new, old = sha1(material['new']), sha1(material['old'])
    output = find_identity_output([(new, 'Alice Example', None), (old, 'Alice Example', 'CSSMERR_TP_NOT_TRUSTED')])
    assert output.startswith('\nPolicy: SSL (client)\n  Matching identities\n  1) %s "Alice Example"\n' % new)
    assert '  2) %s "Alice Example" (CSSMERR_TP_NOT_TRUSTED)\n     2 identities found\n\n' % old in output
    assert output.endswith('  Valid identities only\n  1) %s "Alice Example"\n     1 valid identities found\n' % new)
    assert [(i.sha1, i.valid, i.error) for i in kc.parse_identities(output)] == [
        (new, True, None), (old, False, 'CSSMERR_TP_NOT_TRUSTED')]
    valid_only = find_identity_output([(new, 'Alice Example', None)], valid_only=True)
    assert valid_only == '  1) %s "Alice Example"\n     1 valid identities found\n' % new
    assert [(i.sha1, i.valid) for i in kc.parse_identities(valid_only)] == [(new, True)]


@pytest.mark.parametrize('output, message', [
    ('', 'no "identities found" line'),
    ('  1) %s "x"\n     2 valid identities found\n' % ('AB' * 20), 'announced 2'),
    ('Policy: SSL (client)\n  Matching identities\n  1) ABC "x"\n     1 identities found\n', 'does not understand'),
    # The layout of a public how-to with the counts replaced by "X" (MobilityData/gtfs-validator
    # docs/MAC_CODE_SIGNING.md): no count line this module can trust.
    ('Policy: X.509 Basic\n  Matching identities\n  1) 02E2E5C2E035C4AEB7DEA380CEC56C1F2A5DADA4 "Developer ID '
     'Application: The International Data Organization For Transport (BF2U75HN4D)"\n     X identities found\n',
     'does not understand'),
])
def test_parse_identities_refuses_output_it_does_not_understand(output, message):
    with pytest.raises(kc.KeychainError, match=message):
        kc.parse_identities(output)


@pytest.mark.parametrize('with_sha256', [True, False])
def test_parse_certificates_both_formats(material, with_sha256):
    output = find_certificate_output([material['ca'], material['old'], material['new']], with_sha256)
    assert output.count('-----BEGIN CERTIFICATE-----') == 3
    assert ('SHA-256 hash: ' in output) is with_sha256
    assert all(len(line) <= 64 for line in output.splitlines() if not line.startswith(('SHA-', '-----')))
    parsed = kc.parse_certificates(output)
    assert [c.sha1 for c in parsed] == [sha1(material['ca']), sha1(material['old']), sha1(material['new'])]
    assert parsed[0].is_ca() and not parsed[1].is_ca()
    assert parsed[2].sha256 == material['new'].fingerprint(hashes.SHA256()).hex().upper()
    assert kc.parse_certificates('') == []


def test_parse_certificates_checks_the_printed_hashes(material):
    output = find_certificate_output([material['old']])
    with pytest.raises(kc.KeychainError, match='do not match'):
        kc.parse_certificates(output.replace(sha1(material['old']), 'AB' * 20))
    with pytest.raises(kc.KeychainError, match='without its "SHA-1 hash:"'):
        kc.parse_certificates(pem_block(material['old'].public_bytes(serialization.Encoding.DER)))


def test_parse_identity_preference(material):
    fake = FakeSecurity(material['keychain'])
    fake.add(material['new'], key=True)
    fake.preferences['https://vpn.example.org/'] = sha1(material['new'])
    rc, out, _err = fake([kc.SECURITY] + kc.get_identity_preference_command('https://vpn.example.org/')[1:])
    assert rc == 0
    assert kc.parse_identity_preference(out) == sha1(material['new'])
    assert kc.parse_identity_preference('SHA-1 hash: %s\n' % ('ab' * 20)) == 'AB' * 20  # releases before SHA-256
    assert kc.parse_identity_preference('') is None


@pytest.mark.parametrize('err, field, words', [
    (ERROR_LOCKED, 'keychain_password', ['is locked', 'keychain_password']),
    (ERROR_AES, 'pkcs12_path', ['encryption: legacy', 'AES/PBES2']),
    (ERROR_TRUST, 'trust_ca', ['macOS 11', 'certfleet.pki.apple_profile']),
    ('SecTrustSettingsSetTrustSettings: The authorization was denied since no user interaction was possible.\n',
     'trust_ca', ['trust_ca: false']),
    (ERROR_NO_KEYCHAIN, 'keychain', ['not found']),
    ('security: something new\n', 'identity_preference_urls', ['failed for', 'something new']),
])
def test_failures_are_explained(err, field, words):
    error = kc.failure('doing it', 1, '', err, keychain='/k', field='identity_preference_urls', file='alice.p12')
    assert error.field == field
    for word in words:
        assert word in error.message


# -- keychain resolution and input checks --------------------------------------------------------------------------
class _Entry:
    def __init__(self, name, uid, home):
        self.pw_name, self.pw_uid, self.pw_dir = name, uid, home


def test_resolve_login_keychain(tmp_path, monkeypatch):
    import pwd
    home = tmp_path / 'alice'
    (home / 'Library' / 'Keychains').mkdir(parents=True)
    users = {'alice': _Entry('alice', 501, str(home)), 'bob': _Entry('bob', 502, str(tmp_path / 'bob'))}
    monkeypatch.setattr(pwd, 'getpwnam', lambda name: users[name])
    monkeypatch.setattr(pwd, 'getpwuid', lambda uid: next(u for u in users.values() if u.pw_uid == uid))
    with pytest.raises(InputError) as missing:
        kc.resolve_keychain('login', 'alice', euid=501)
    assert missing.value.field == 'keychain' and 'login.keychain-db does not exist' in missing.value.message
    (home / 'Library' / 'Keychains' / 'login.keychain').write_bytes(b'old')  # before macOS 10.12
    assert kc.resolve_keychain('login', 'alice', euid=501) == (str(home / 'Library/Keychains/login.keychain'), 'login')
    (home / 'Library' / 'Keychains' / 'login.keychain-db').write_bytes(b'kych')
    expected = (str(home / 'Library/Keychains/login.keychain-db'), 'login')
    assert kc.resolve_keychain('login', None, euid=501) == expected
    with pytest.raises(InputError) as other:
        kc.resolve_keychain('login', 'alice', euid=0)
    assert other.value.field == 'user' and 'become_user: alice' in other.value.message
    with pytest.raises(InputError) as nobody:
        kc.resolve_keychain('login', 'nobody-here', euid=501)
    assert nobody.value.field == 'user' and 'does not exist' in nobody.value.message


def test_resolve_system_and_path(tmp_path, monkeypatch):
    with pytest.raises(InputError, match='System.keychain does not exist'):
        kc.resolve_keychain('system', euid=0)
    system = tmp_path / 'System.keychain'
    system.write_bytes(b'kych')
    monkeypatch.setattr(kc, 'SYSTEM_KEYCHAIN', str(system))
    assert kc.resolve_keychain('system', euid=0) == (str(system), 'system')
    assert kc.resolve_keychain(str(system), euid=501) == (str(system), 'path')
    with pytest.raises(InputError) as missing:
        kc.resolve_keychain(str(tmp_path / 'nope.keychain-db'), euid=501)
    assert missing.value.field == 'keychain'


def test_system_keychain_needs_root_to_change(material, tmp_path, monkeypatch):
    system = tmp_path / 'System.keychain'
    system.write_bytes(b'kych')
    monkeypatch.setattr(kc, 'SYSTEM_KEYCHAIN', str(system))
    fake = FakeSecurity(str(system))
    predicted = kc.ensure_keychain_certificate(keychain='system', pkcs12_path=material['legacy'],
                                               pkcs12_password=PASSWORD, runner=fake, euid=501, check_mode=True)
    assert predicted['changed'] is True and not fake.writes
    with pytest.raises(InputError) as error:
        kc.ensure_keychain_certificate(keychain='system', pkcs12_path=material['legacy'], pkcs12_password=PASSWORD,
                                       runner=fake, euid=501)
    assert error.value.field == 'keychain' and 'root' in error.value.message and not fake.writes
    done = kc.ensure_keychain_certificate(keychain='system', pkcs12_path=material['legacy'], pkcs12_password=PASSWORD,
                                          ca_certificate=material['ca_path'], trust_ca=True, runner=fake, euid=0)
    assert done['changed'] is True
    assert fake.calls[[c[1] for c in fake.calls].index('add-trusted-cert')][2] == '-d'  # admin trust domain


# -- ensure_keychain_certificate -------------------------------------------------------------------------------------
def test_import_trust_prefer_then_rerun_is_unchanged(material, fake):
    fake.locked = True
    params = dict(keychain_password=LOGIN_PASSWORD, pkcs12_path=material['modern'], pkcs12_password=PASSWORD,
                  ca_certificate=material['ca_path'], trust_ca=True,
                  identity_preference_urls=['https://vpn.example.org/', '*.intranet.example.org'])
    first = ensure(material, fake, **params)
    alice = sha1(material['old'])  # the PKCS#12 files of the fixture hold the first certificate
    assert first['changed'] is True
    assert first['imported'] == alice and first['ca_trust_changed'] is True
    assert first['preferences_changed'] == ['https://vpn.example.org/', '*.intranet.example.org']
    assert first['identity_preferences'] == {'https://vpn.example.org/': alice, '*.intranet.example.org': alice}
    assert first['certificate']['fingerprint_sha1'] == alice
    holder = [e for e in first['certificates'] if e['fingerprint_sha1'] == alice]
    assert holder and holder[0]['has_key'] and holder[0]['valid'] is True and holder[0]['trust_error'] is None
    assert any(e['is_ca'] and not e['has_key'] for e in first['certificates'])
    assert alice in first['diff']['after'] and alice not in first['diff']['before']
    # The unlock password went to stdin, the PKCS#12 password never reached a command line.
    commands = [c[1] for c in fake.calls]
    assert commands[0] == 'unlock-keychain' and fake.stdin[0] == LOGIN_PASSWORD + '\n'
    assert not any(PASSWORD in arg or LOGIN_PASSWORD in arg for call in fake.calls for arg in call)
    assert commands.index('add-trusted-cert') < commands.index('import') < commands.index('set-identity-preference')
    imported = fake.calls[commands.index('import')]
    assert imported[imported.index('-P') + 1] != PASSWORD and len(imported[imported.index('-P') + 1]) >= 32
    assert not os.path.exists(imported[2])  # the one-time copy is gone

    fake.calls.clear()
    second = ensure(material, fake, **params)
    assert second['changed'] is False and second['reasons'] == []
    assert second['imported'] is None and second['ca_trust_changed'] is False and second['preferences_changed'] == []
    assert {c[1] for c in fake.calls} <= FakeSecurity.READS | {'unlock-keychain'}


def test_check_mode_predicts_without_writing(material, fake):
    params = dict(pkcs12_path=material['legacy'], pkcs12_password=PASSWORD, ca_certificate=material['ca_path'],
                  trust_ca=True, identity_preference_urls=['https://vpn.example.org/'])
    predicted = ensure(material, fake, check_mode=True, **params)
    assert predicted['changed'] is True and predicted['imported'] == sha1(material['old'])
    assert predicted['ca_trust_changed'] is True
    assert predicted['identity_preferences'] == {'https://vpn.example.org/': sha1(material['old'])}
    assert len(predicted['reasons']) == 3
    assert not fake.writes and not fake.certificates
    done = ensure(material, fake, **params)
    assert done['changed'] is True
    again = ensure(material, fake, check_mode=True, **params)
    assert again['changed'] is False


def test_reencrypt_off_passes_the_file_and_refuses_aes(material, fake):
    with pytest.raises(InputError) as aes:
        ensure(material, fake, pkcs12_path=material['modern'], pkcs12_password=PASSWORD, reencrypt=False)
    assert aes.value.field == 'pkcs12_path' and 'encryption: legacy' in aes.value.message and not fake.calls
    done = ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD, reencrypt=False,
                  access_applications=[material['keychain']], non_extractable=True)
    assert done['changed'] is True
    imported = [c for c in fake.calls if c[1] == 'import'][0]
    assert imported[2] == material['legacy'] and imported[imported.index('-P') + 1] == PASSWORD
    assert imported[-3:] == ['-x', '-T', material['keychain']]


def test_aes_rejected_by_macos_is_explained(material, fake, monkeypatch):
    # As if the PKCS#12 check had not seen the AES: macOS's own error text reaches the user with the advice.
    monkeypatch.setattr(kc, 'apple_compatible', lambda data: (True, 'modern'))
    with pytest.raises(kc.KeychainError) as error:
        ensure(material, fake, pkcs12_path=material['modern'], pkcs12_password=PASSWORD, reencrypt=False)
    assert error.value.field == 'pkcs12_path'
    assert 'MAC verification failed' in error.value.message and 'encryption: legacy' in error.value.message


def test_locked_keychain_without_password_fails_clearly_and_changes_nothing(material, fake):
    fake.locked = True
    with pytest.raises(kc.KeychainError) as error:
        ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD)
    assert error.value.field == 'keychain_password' and 'is locked' in error.value.message
    assert not fake.certificates


def test_unlock_without_security_says_so(material):
    def runner(args, stdin=None):
        return kc.default_runner(['/nonexistent/security'] + args[1:], stdin)

    with pytest.raises(kc.KeychainError) as error:
        kc.ensure_keychain_certificate(keychain=material['keychain'], keychain_password=LOGIN_PASSWORD,
                                       pkcs12_path=material['legacy'], pkcs12_password=PASSWORD, runner=runner)
    assert error.value.field == 'keychain' and 'macOS only' in error.value.message
    assert 'wrong password' not in error.value.message


def test_wrong_login_password(material, fake):
    fake.locked = True
    with pytest.raises(kc.KeychainError) as error:
        ensure(material, fake, keychain_password='not it', pkcs12_path=material['legacy'], pkcs12_password=PASSWORD)
    assert error.value.field == 'keychain_password' and 'not correct' in error.value.message
    assert 'not it' not in error.value.message


def test_trust_refused_headless_changes_nothing_and_says_why(material, fake):
    fake.trust_fails = True
    with pytest.raises(kc.KeychainError) as error:
        ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD,
               ca_certificate=material['ca_path'], trust_ca=True)
    assert error.value.field == 'trust_ca' and 'apple_profile' in error.value.message
    assert not fake.certificates and not fake.keys
    # A CA already trusted (for example by an MDM profile) needs no trust change at all.
    fake.add(material['ca'])
    fake.trusted[sha1(material['ca'])] = {'ssl', 'basic'}
    done = ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD,
                  ca_certificate=material['ca_path'], trust_ca=True)
    assert done['changed'] is True and done['ca_trust_changed'] is False


def test_trust_waiting_for_a_dialog_is_explained(material, fake):
    fake.trust_fails = 'dialog'
    with pytest.raises(kc.KeychainError) as error:
        ensure(material, fake, ca_certificate=material['ca_path'], trust_ca=True)
    assert error.value.field == 'trust_ca'
    assert 'waiting for a dialog' in error.value.message and 'apple_profile' in error.value.message


def test_certificate_without_its_key_is_replaced(material, fake):
    fake.add(material['old'])  # imported once as a bare certificate
    done = ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD)
    assert done['changed'] is True
    commands = [c[1] for c in fake.calls]
    assert commands.index('delete-certificate') < commands.index('import')
    assert sha1(material['old']) in fake.keys


def test_preference_not_found_through_the_search_list(material):
    fake = FakeSecurity(material['keychain'], search_list=False)
    with pytest.raises(kc.KeychainError) as error:
        ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD,
               identity_preference_urls=['https://vpn.example.org/'])
    assert error.value.field == 'identity_preference_urls' and 'search list' in error.value.message


def test_renewal_then_superseded_removal(material, fake):
    first = ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD,
                   ca_certificate=material['ca_path'], identity_preference_urls=['https://vpn.example.org/'])
    old, new = sha1(material['old']), sha1(material['new'])
    assert first['imported'] == old
    renewed = ensure(material, fake, pkcs12_path=material['renewed'], pkcs12_password=PASSWORD,
                     ca_certificate=material['ca_path'], identity_preference_urls=['https://vpn.example.org/'])
    assert renewed['imported'] == new and renewed['preferences_changed'] == ['https://vpn.example.org/']
    assert fake.keys == {old, new} and fake.preferences['https://vpn.example.org/'] == new

    params = dict(state='absent', issuer=material['ca_path'], keep_fingerprint_sha1=[new.lower()])
    predicted = ensure(material, fake, check_mode=True, **params)
    assert predicted['changed'] is True and [r['fingerprint_sha1'] for r in predicted['removed']] == [old]
    assert old in fake.keys
    removed = ensure(material, fake, **params)
    assert removed['changed'] is True and [r['fingerprint_sha1'] for r in removed['removed']] == [old]
    assert removed['removed'][0]['has_key'] is True
    assert fake.keys == {new} and sha1(material['ca']) in fake.certificates  # the CA stays
    assert [c for c in fake.calls if c[1] == 'delete-identity'] == [
        [kc.SECURITY, 'delete-identity', '-Z', old, material['keychain']]]
    again = ensure(material, fake, **params)
    assert again['changed'] is False and again['removed'] == []


def test_removal_by_fingerprint_and_of_another_cas_certificate(material, fake, make_ca, tmp_path):
    other = make_ca('other', subject={'CN': 'Other CA'})
    other.ensure('mallory')
    foreign_path = tmp_path / 'mallory.p12'
    other.export(identity='mallory', dest=str(foreign_path), password=PASSWORD, encryption='legacy', iterations=FAST)
    foreign = pkcs12.load_pkcs12(foreign_path.read_bytes(), PASSWORD.encode()).cert.certificate
    ensure(material, fake, pkcs12_path=str(foreign_path), pkcs12_password=PASSWORD)
    ensure(material, fake, pkcs12_path=material['legacy'], pkcs12_password=PASSWORD)
    before = dict(fake.certificates)
    # Asked to remove a certificate of another CA as if it were this CA's: refused, nothing removed.
    with pytest.raises(InputError) as error:
        ensure(material, fake, state='absent', fingerprint_sha1=sha1(foreign), issuer=material['ca_path'])
    assert error.value.field == 'issuer' and 'nothing was removed' in error.value.message
    assert fake.certificates == before
    # Removal by issuer leaves the other CA's identity alone.
    by_issuer = ensure(material, fake, state='absent', issuer=material['ca_path'])
    assert [r['fingerprint_sha1'] for r in by_issuer['removed']] == [sha1(material['old'])]
    assert sha1(foreign) in fake.keys
    # By fingerprint alone (colons allowed).
    colons = ':'.join(sha1(foreign)[i:i + 2] for i in range(0, 40, 2))
    gone = ensure(material, fake, state='absent', fingerprint_sha1=colons)
    assert gone['changed'] is True and sha1(foreign) not in fake.keys


@pytest.mark.parametrize('params, field', [
    ({'state': 'maybe'}, 'state'),
    ({}, 'pkcs12_path'),
    ({'pkcs12_path': '/nonexistent/alice.p12', 'pkcs12_password': PASSWORD}, 'pkcs12_path'),
    ({'pkcs12_path': 'LEGACY', 'pkcs12_password': 'wrong password'}, 'pkcs12_password'),
    ({'pkcs12_path': 'LEGACY'}, 'pkcs12_password'),
    ({'pkcs12_path': 'CORRUPT', 'pkcs12_password': PASSWORD}, 'pkcs12_path'),
    ({'pkcs12_path': 'LEGACY', 'pkcs12_password': PASSWORD, 'ca_certificate': 'OTHER_CA'}, 'ca_certificate'),
    ({'pkcs12_path': 'LEGACY', 'pkcs12_password': PASSWORD, 'trust_ca': True}, 'ca_certificate'),
    ({'ca_certificate': 'CA', 'identity_preference_urls': ['https://x/']}, 'identity_preference_urls'),
    ({'pkcs12_path': 'LEGACY', 'pkcs12_password': PASSWORD, 'identity_preference_urls': ['not a url']},
     'identity_preference_urls'),
    ({'pkcs12_path': 'LEGACY', 'pkcs12_password': PASSWORD, 'access_applications': ['Safari.app']},
     'access_applications'),
    ({'pkcs12_path': 'LEGACY', 'pkcs12_password': PASSWORD, 'access_applications': ['/Applications/Nope.app']},
     'access_applications'),
    ({'pkcs12_path': 'LEGACY', 'pkcs12_password': PASSWORD, 'trust_policies': ['sslClient']}, 'trust_policies'),
    ({'ca_certificate': '/nonexistent/ca.pem'}, 'ca_certificate'),
    ({'state': 'absent'}, 'fingerprint_sha1'),
    ({'state': 'absent', 'fingerprint_sha1': 'XYZ'}, 'fingerprint_sha1'),
    ({'state': 'absent', 'issuer': 'CA', 'keep_fingerprint_sha1': ['12']}, 'keep_fingerprint_sha1'),
    ({'keychain': '/nonexistent/login.keychain-db', 'pkcs12_path': 'LEGACY', 'pkcs12_password': PASSWORD},
     'keychain'),
])
def test_bad_input_names_the_field_and_runs_nothing(material, fake, make_ca, tmp_path, params, field):
    corrupt = tmp_path / 'corrupt.p12'
    corrupt.write_bytes(b'0\x82\x01\x00 definitely not a PKCS#12')
    other = make_ca('other', subject={'CN': 'Other CA'})
    replace = {'LEGACY': material['legacy'], 'CORRUPT': str(corrupt), 'OTHER_CA': other.file('ca.pem'),
               'CA': material['ca_path']}
    params = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    with pytest.raises(InputError) as error:
        ensure(material, fake, **params)
    assert error.value.field == field, error.value.message
    assert not fake.calls
