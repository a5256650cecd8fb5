# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Subjects and subjectAltNames: parsing, validation, canonical forms (private module_utils)."""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

try:
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier
except ImportError:  # reported by the module through deps.require_cryptography()
    pass

UPN_OID = '1.3.6.1.4.1.311.20.2.3'

# short name -> (OID dotted string, maximum length from RFC 5280 upper bounds, aliases)
_ATTRIBUTES = {
    'DC': ('0.9.2342.19200300.100.1.25', 63, ('domainComponent',)),
    'C': ('2.5.4.6', 2, ('countryName',)),
    'ST': ('2.5.4.8', 128, ('stateOrProvinceName', 'S')),
    'L': ('2.5.4.7', 128, ('localityName',)),
    'street': ('2.5.4.9', 128, ('streetAddress',)),
    'O': ('2.5.4.10', 64, ('organizationName',)),
    'OU': ('2.5.4.11', 64, ('organizationalUnitName',)),
    'title': ('2.5.4.12', 64, ()),
    'CN': ('2.5.4.3', 64, ('commonName',)),
    'GN': ('2.5.4.42', 64, ('givenName',)),
    'SN': ('2.5.4.4', 64, ('surname',)),
    'serialNumber': ('2.5.4.5', 64, ()),
    'UID': ('0.9.2342.19200300.100.1.1', 64, ('userId',)),
    'emailAddress': ('1.2.840.113549.1.9.1', 255, ('E', 'email')),
}
# Canonical order of RDNs in an issued subject (the familiar OpenSSL order), whatever order the dict had.
SUBJECT_ORDER = list(_ATTRIBUTES)
_ALIASES = {}
for _short, (_oid, _limit, _aliases) in _ATTRIBUTES.items():
    for _name in (_short,) + _aliases:
        _ALIASES[_name.lower()] = _short
_BY_OID = {oid: short for short, (oid, _limit, _aliases) in _ATTRIBUTES.items()}

_EMAIL = re.compile(r'^[A-Za-z0-9.!#$%&\'*+/=?^_`{|}~-]+@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
                    r'(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)$')
_DNS = re.compile(r'^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$')
_URI = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def canonical_attribute(name: str, field: str = 'subject') -> str:
    short = _ALIASES.get(str(name).lower())
    if short is None:
        raise InputError('unknown subject attribute %r (known: %s)' % (name, ', '.join(SUBJECT_ORDER)),
                         '%s.%s' % (field, name))
    return short


def normalize_subject(subject, field: str = 'subject') -> dict:
    """Validate a subject dict and return {short name: [values]} with canonical names."""
    if subject is None:
        return {}
    if not isinstance(subject, dict):
        raise InputError('expected a dict of attribute names to values, such as {CN: alice, O: Example}', field=field)
    result = {}
    for name, value in subject.items():
        short = canonical_attribute(name, field)
        values = value if isinstance(value, list) else [value]
        cleaned = []
        for item in values:
            if item is None or isinstance(item, (dict, list, bool)):
                raise InputError('expected text, got %r' % (item,), '%s.%s' % (field, name))
            text = str(item).strip()
            if not text:
                raise InputError('must not be empty', '%s.%s' % (field, name))
            if _CONTROL.search(text):
                raise InputError('must not contain control characters', '%s.%s' % (field, name))
            limit = _ATTRIBUTES[short][1]
            if len(text) > limit:
                raise InputError('is %d characters long; at most %d are allowed' % (len(text), limit),
                                 '%s.%s' % (field, name))
            if short == 'C' and not re.match(r'^[A-Z]{2}$', text):
                raise InputError('must be a two-letter ISO 3166 country code in capitals, got %r' % text,
                                 '%s.%s' % (field, name))
            if short == 'emailAddress':
                validate_email(text, '%s.%s' % (field, name))
            cleaned.append(text)
        if short in result:
            raise InputError('given twice (as %r and an alias)' % name, '%s.%s' % (field, name))
        result[short] = cleaned
    return result


def subject_to_name(subject: dict):
    """{short: [values]} -> x509.Name in canonical order."""
    rdns = []
    for short in SUBJECT_ORDER:
        for value in subject.get(short, []):
            rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(ObjectIdentifier(_ATTRIBUTES[short][0]),
                                                                           value)]))
    if not rdns:
        raise InputError('the subject is empty; give at least CN', 'subject')
    return x509.Name(rdns)


def name_to_subject(name) -> dict:
    """x509.Name -> {short: [values]} (unknown attributes by dotted OID)."""
    result: dict = {}
    for attribute in name:
        short = _BY_OID.get(attribute.oid.dotted_string, attribute.oid.dotted_string)
        result.setdefault(short, []).append(attribute.value if isinstance(attribute.value, str)
                                            else attribute.value.decode('utf-8', 'replace'))
    return result


def common_name(name, fallback: str | None = None) -> str:
    """The first CN of an x509.Name; without one ``fallback``, or else the whole name in RFC 4514 form."""
    values = name.get_attributes_for_oid(ObjectIdentifier(_ATTRIBUTES['CN'][0]))
    if values:
        return str(values[0].value)
    return fallback if fallback is not None else name.rfc4514_string()


def subject_display(subject: dict) -> dict:
    """Plain dict for results: single values as strings."""
    return {key: (values[0] if len(values) == 1 else list(values)) for key, values in subject.items()}


def validate_email(text: str, field: str) -> str:
    match = _EMAIL.match(text)
    if not match:
        raise InputError('%r is not a valid e-mail address' % text, field)
    local, domain = text.rsplit('@', 1)
    return '%s@%s' % (local, domain.lower())


def _der_utf8string(text: str) -> bytes:
    data = text.encode('utf-8')
    length = len(data)
    if length < 0x80:
        header = bytes([length])
    else:
        size = length.to_bytes((length.bit_length() + 7) // 8, 'big')
        header = bytes([0x80 | len(size)]) + size
    return b'\x0c' + header + data


def _der_read_utf8string(data: bytes) -> str:
    if not data or data[0] != 0x0c:
        raise ValueError('not a UTF8String')
    length = data[1]
    offset = 2
    if length & 0x80:
        count = length & 0x7f
        length = int.from_bytes(data[2:2 + count], 'big')
        offset = 2 + count
    return data[offset:offset + length].decode('utf-8')


def normalize_san(entry, field: str = 'sans') -> str:
    """'email:...', 'DNS:...', 'URI:...', 'UPN:...', 'IP:...' -> canonical 'kind:value'."""
    if not isinstance(entry, str) or ':' not in entry:
        raise InputError('%r is not of the form email:, DNS:, URI:, UPN: or IP: followed by a value' % (entry,),
                         field)
    kind, value = entry.split(':', 1)
    kind_key = kind.strip().lower()
    value = value.strip()
    if not value:
        raise InputError('%r has an empty value' % entry, field)
    if kind_key in ('email', 'rfc822', 'mail'):
        return 'email:' + validate_email(value, field)
    if kind_key == 'dns':
        lowered = value.lower().rstrip('.')
        if not _DNS.match(lowered):
            raise InputError('%r is not a valid DNS name' % value, field)
        return 'DNS:' + lowered
    if kind_key == 'uri':
        if not _URI.match(value):
            raise InputError('%r is not a URI with a scheme' % value, field)
        return 'URI:' + value
    if kind_key == 'upn':
        if not _EMAIL.match(value):
            raise InputError('%r is not a user principal name of the form user@realm' % value, field)
        return 'UPN:' + value
    if kind_key in ('ip', 'ip address'):
        try:
            return 'IP:' + str(ipaddress.ip_address(value))
        except ValueError:
            raise InputError('%r is not an IP address' % value, field)
    raise InputError('%r has an unknown kind %r (use email, DNS, URI, UPN or IP)' % (entry, kind), field)


def normalize_sans(entries, email: str | None = None, field: str = 'sans') -> list:
    """Canonical, de-duplicated, sorted SAN list; ``email`` is added as an email SAN."""
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise InputError('expected a list such as ["email:alice@example.org", "DNS:host.example.org"]', field)
    result = set()
    for entry in entries:
        result.add(normalize_san(entry, field))
    if email:
        result.add('email:' + validate_email(str(email).strip(), 'email'))
    return sorted(result)


def san_to_general_name(san: str):
    kind, value = san.split(':', 1)
    if kind == 'email':
        return x509.RFC822Name(value)
    if kind == 'DNS':
        return x509.DNSName(value)
    if kind == 'URI':
        return x509.UniformResourceIdentifier(value)
    if kind == 'UPN':
        return x509.OtherName(ObjectIdentifier(UPN_OID), _der_utf8string(value))
    if kind == 'IP':
        return x509.IPAddress(ipaddress.ip_address(value))
    raise InputError('unknown SAN kind %r' % kind, 'sans')


def general_names_to_sans(names) -> list:
    result = []
    for name in names:
        if isinstance(name, x509.RFC822Name):
            local, _at, domain = name.value.rpartition('@')
            result.append('email:%s@%s' % (local, domain.lower()))
        elif isinstance(name, x509.DNSName):
            result.append('DNS:' + name.value.lower())
        elif isinstance(name, x509.UniformResourceIdentifier):
            result.append('URI:' + name.value)
        elif isinstance(name, x509.IPAddress):
            result.append('IP:' + str(name.value))
        elif isinstance(name, x509.OtherName) and name.type_id.dotted_string == UPN_OID:
            try:
                result.append('UPN:' + _der_read_utf8string(name.value))
            except (ValueError, IndexError, UnicodeDecodeError):
                result.append('otherName:' + UPN_OID)
        else:
            result.append('other:' + type(name).__name__)
    return sorted(result)


def certificate_sans(certificate) -> list:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return general_names_to_sans(extension.value)


def san_domain(san: str) -> str | None:
    kind, value = san.split(':', 1)
    if kind in ('email', 'UPN'):
        return value.rsplit('@', 1)[1].lower()
    if kind == 'DNS':
        return value
    return None
