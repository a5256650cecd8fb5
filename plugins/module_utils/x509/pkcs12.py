# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PKCS#12: packing in two encryption levels, opening a file, reading back how it was made (private module_utils)."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import der

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12
except ImportError:
    pass

ENCRYPTIONS = ('modern', 'legacy')
# PBKDF2 iterations. Modern: OWASP's 2023 figure for PBKDF2-HMAC-SHA256. Legacy: what OpenSSL and the Windows
# and macOS exporters of that era write; old importers are the reason to choose legacy at all.
DEFAULT_ITERATIONS = {'modern': 600000, 'legacy': 2048}

_PBES2 = '1.2.840.113549.1.5.13'
_PBKDF2 = '1.2.840.113549.1.5.12'
_AES256_CBC = '2.16.840.1.101.3.4.1.42'
_SHA1_3DES = '1.2.840.113549.1.12.1.3'
_SHA1_RC2_40 = '1.2.840.113549.1.12.1.6'
_DATA = '1.2.840.113549.1.7.1'
_ENCRYPTED_DATA = '1.2.840.113549.1.7.6'
_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2'
_MAC_DIGESTS = {'1.3.14.3.2.26': 'sha1', '2.16.840.1.101.3.4.2.1': 'sha256', '2.16.840.1.101.3.4.2.2': 'sha384',
                '2.16.840.1.101.3.4.2.3': 'sha512'}


def validate_password(password, field: str = 'password') -> bytes:
    if password is None or password == '':
        raise InputError('a non-empty password is required to protect the private key', field)
    return str(password).encode('utf-8')


def serialize(*, key, certificate, chain: list, password, encryption: str = 'modern',
              friendly_name: str | None = None, iterations: int | None = None) -> bytes:
    if encryption not in ENCRYPTIONS:
        raise InputError('unknown encryption %r (use modern or legacy)' % encryption, 'encryption')
    secret = validate_password(password)
    rounds = iterations or DEFAULT_ITERATIONS[encryption]
    if rounds < 1000:
        raise InputError('at least 1000 PBKDF2 iterations are required, got %d' % rounds, 'iterations')
    builder = PrivateFormat.PKCS12.encryption_builder().kdf_rounds(rounds)
    if encryption == 'modern':
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
    else:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
    name = friendly_name.encode('utf-8') if friendly_name else None
    return pkcs12.serialize_key_and_certificates(name, key, certificate, chain or None, builder.build(secret))


def load(data: bytes, password):
    """Return the parsed PKCS12KeyAndCertificates, or None when the password does not open it."""
    try:
        return pkcs12.load_pkcs12(data, validate_password(password))
    except ValueError:
        return None


def _algorithm(sequence_value: bytes) -> tuple:
    """AlgorithmIdentifier -> (scheme, iterations)."""
    items = der.children(sequence_value)
    oid = der.decode_oid(items[0][1])
    if oid == _PBES2:
        kdf, scheme = der.children(items[1][1])
        kdf_items = der.children(kdf[1])
        kdf_params = der.children(kdf_items[1][1])
        iterations = der.decode_int(kdf_params[1][1])
        cipher = der.decode_oid(der.children(scheme[1])[0][1])
        return ('modern' if cipher == _AES256_CBC else 'pbes2:' + cipher), iterations
    if oid in (_SHA1_3DES, _SHA1_RC2_40):
        params = der.children(items[1][1])
        return ('legacy' if oid == _SHA1_3DES else 'rc2-40'), der.decode_int(params[1][1])
    return oid, None


def describe(data: bytes) -> dict:
    """Tell how a PKCS#12 file is protected without decrypting it.

    Returns ``encryption`` (modern, legacy, or a description of anything else), ``iterations`` (PBKDF2 rounds of
    the key) and ``mac`` (digest name).
    """
    try:
        _tag, pfx, _end = der.read_tlv(data)
        version, auth_safe, *rest = der.children(pfx)
        content_type, content = der.children(auth_safe[1])
        if der.decode_oid(content_type[1]) != _DATA:
            raise der.DERError('public-key protected PKCS#12 is not supported')
        octets = der.children(content[1])[0][1]
        schemes = set()
        key_iterations = None
        for _tag, info in der.children(der.read_tlv(octets)[1]):
            info_type, info_content = der.children(info)
            kind = der.decode_oid(info_type[1])
            body = der.children(info_content[1])[0][1]
            if kind == _ENCRYPTED_DATA:
                encrypted_content_info = der.children(body)[1][1]
                algorithm = der.children(encrypted_content_info)[1][1]
                schemes.add(_algorithm(algorithm)[0])
            elif kind == _DATA:
                for _bag_tag, bag in der.children(der.read_tlv(body)[1]):
                    bag_items = der.children(bag)
                    if der.decode_oid(bag_items[0][1]) == _SHROUDED_KEY_BAG:
                        encrypted_key_info = der.children(bag_items[1][1])[0][1]
                        scheme, key_iterations = _algorithm(der.children(encrypted_key_info)[0][1])
                        schemes.add(scheme)
        mac = None
        if rest:
            digest_info = der.children(rest[0][1])[0][1]
            mac_oid = der.decode_oid(der.children(der.children(digest_info)[0][1])[0][1])
            mac = _MAC_DIGESTS.get(mac_oid, mac_oid)
        del version
    except (der.DERError, IndexError, ValueError) as exc:
        raise InputError('not a readable PKCS#12 file (%s)' % exc)
    if len(schemes) == 1:
        encryption = schemes.pop()
    elif not schemes:
        encryption = 'none'
    else:
        encryption = 'mixed:' + ','.join(sorted(schemes))
    return {'encryption': encryption, 'iterations': key_iterations, 'mac': mac}


def apple_compatible(data: bytes) -> tuple:
    """(True, encryption) when macOS's importer can open this PKCS#12 (no AES/PBES2 anywhere in it)."""
    try:
        encryption = describe(data)['encryption']
    except InputError:
        return False, 'unknown'
    return ('modern' not in encryption and 'pbes2' not in encryption), encryption


def open_pkcs12(path: str, password) -> tuple:
    """Read and open a PKCS#12 file with its key; returns (parsed, data). Errors name the parameter."""
    if not path:
        raise InputError('is required', 'pkcs12_path')
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError('%s does not exist' % path, 'pkcs12_path')
    except IsADirectoryError:
        raise InputError('%s is a folder, expected a PKCS#12 file' % path, 'pkcs12_path')
    except OSError as exc:
        raise InputError('%s cannot be read (%s)' % (path, exc.strerror or exc), 'pkcs12_path')
    return open_pkcs12_data(data, password, path), data


def open_pkcs12_data(data: bytes, password, shown: str = 'the PKCS#12 data'):
    """Open PKCS#12 bytes that must hold a certificate and its key; errors name pkcs12_path or pkcs12_password."""
    if password is None or password == '':
        raise InputError('is required to open %s' % shown, 'pkcs12_password')
    try:
        parsed = pkcs12.load_pkcs12(data, str(password).encode('utf-8'))
    except ValueError as exc:
        text = str(exc).lower()
        if 'password' in text or 'mac' in text or 'decrypt' in text:
            raise InputError('does not open %s (wrong password)' % shown, 'pkcs12_password')
        raise InputError('%s is not a readable PKCS#12 file (%s)' % (shown, exc), 'pkcs12_path')
    if parsed.cert is None or parsed.key is None:
        raise InputError('%s must hold a certificate and its private key' % shown, 'pkcs12_path')
    return parsed


def load_pkcs12(path: str, password) -> tuple:
    """Open a PKCS#12 file; returns (certificate, chain)."""
    parsed, _data = open_pkcs12(path, password)
    return parsed.cert.certificate, [c.certificate for c in parsed.additional_certs]


def friendly_name(parsed) -> str | None:
    """The friendly name of an opened PKCS#12's certificate, if it has one."""
    return (parsed.cert.friendly_name or b'').decode('utf-8', 'replace') or None


def repack(parsed, password, encryption: str = 'legacy', chain=None, default_name: str | None = None) -> bytes:
    """An opened PKCS#12's key and certificate again, under ``password`` in ``encryption``.

    ``chain`` replaces the file's own chain (for example without what a store already holds); the friendly name
    is kept, or ``default_name`` when there was none.
    """
    if chain is None:
        chain = [c.certificate for c in parsed.additional_certs]
    return serialize(key=parsed.key, certificate=parsed.cert.certificate, chain=chain, password=password,
                     encryption=encryption, friendly_name=friendly_name(parsed) or default_name)
