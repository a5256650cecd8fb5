# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import (
    SUBJECT_ORDER, UPN_OID, canonical_attribute, certificate_sans, common_name, general_names_to_sans, name_to_subject,
    normalize_san, normalize_sans, normalize_subject, san_domain, san_to_general_name, subject_display,
    subject_to_name,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

# -- subjects -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('alias, short', [
    ('CN', 'CN'), ('cn', 'CN'), ('commonName', 'CN'), ('COMMONNAME', 'CN'),
    ('O', 'O'), ('organizationName', 'O'), ('OU', 'OU'), ('organizationalUnitName', 'OU'),
    ('C', 'C'), ('countryName', 'C'), ('ST', 'ST'), ('S', 'ST'), ('stateOrProvinceName', 'ST'),
    ('L', 'L'), ('localityName', 'L'), ('E', 'emailAddress'), ('email', 'emailAddress'),
    ('emailAddress', 'emailAddress'), ('DC', 'DC'), ('domainComponent', 'DC'), ('UID', 'UID'), ('userId', 'UID'),
    ('GN', 'GN'), ('givenName', 'GN'), ('SN', 'SN'), ('surname', 'SN'), ('serialNumber', 'serialNumber'),
])
def test_attribute_aliases(alias, short):
    assert canonical_attribute(alias) == short


def test_normalize_subject_uses_canonical_names_and_strips():
    subject = normalize_subject({'commonName': '  Alice Example ', 'organizationName': 'Example', 'countryName': 'DE',
                                 'E': 'alice@Example.org', 'OU': ['Ops', 'Dev']})
    assert subject == {'CN': ['Alice Example'], 'O': ['Example'], 'C': ['DE'], 'emailAddress': ['alice@Example.org'],
                       'OU': ['Ops', 'Dev']}
    assert normalize_subject(None) == {}
    assert subject_display(subject)['CN'] == 'Alice Example'
    assert subject_display(subject)['OU'] == ['Ops', 'Dev']


def test_subject_to_name_uses_canonical_order_whatever_the_dict_order():
    forwards = normalize_subject({'C': 'DE', 'ST': 'Berlin', 'L': 'Berlin', 'O': 'Example', 'OU': 'Ops',
                                  'CN': 'alice', 'emailAddress': 'alice@example.org'})
    backwards = normalize_subject(dict(reversed(list(forwards.items()))))
    name_a, name_b = subject_to_name(forwards), subject_to_name(backwards)
    assert name_a == name_b
    oids = [attribute.oid for attribute in name_a]
    assert oids == [NameOID.COUNTRY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.LOCALITY_NAME,
                    NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME,
                    NameOID.EMAIL_ADDRESS]
    assert name_a.rfc4514_string().startswith('1.2.840.113549.1.9.1=alice@example.org,CN=alice,OU=Ops')
    # every attribute is its own RDN, in SUBJECT_ORDER
    assert all(len(rdn) == 1 for rdn in name_a.rdns)
    assert [name_to_subject(x509.Name([rdn])) for rdn in name_a.rdns] == [
        {short: forwards[short]} for short in SUBJECT_ORDER if short in forwards]


def test_name_to_subject_round_trip():
    subject = normalize_subject({'CN': 'bob', 'O': 'Example', 'OU': ['a', 'b'], 'C': 'FR'})
    assert name_to_subject(subject_to_name(subject)) == subject


def test_subject_to_name_refuses_empty_subject():
    with pytest.raises(InputError) as err:
        subject_to_name({})
    assert err.value.field == 'subject'


@pytest.mark.parametrize('value', ['DE', 'US', 'FR'])
def test_country_accepts_two_capitals(value):
    assert normalize_subject({'C': value}) == {'C': [value]}


@pytest.mark.parametrize('value', ['de', 'De', 'DEU', 'D', 'D1', '12', 'Germany'])
def test_country_must_be_two_capitals(value):
    with pytest.raises(InputError) as err:
        normalize_subject({'CN': 'x', 'countryName': value})
    assert err.value.field == 'subject.countryName'
    assert err.value.message.startswith('subject.countryName: ')


@pytest.mark.parametrize('name, limit', [('CN', 64), ('O', 64), ('OU', 64), ('L', 128), ('ST', 128),
                                         ('emailAddress', 255)])
def test_length_limits(name, limit):
    if name == 'emailAddress':
        ok_value = 'a' * (limit - len('@example.org')) + '@example.org'
        too_long = 'a' + ok_value
    else:
        ok_value, too_long = 'x' * limit, 'x' * (limit + 1)
    assert normalize_subject({name: ok_value}) == {name: [ok_value]}
    with pytest.raises(InputError) as err:
        normalize_subject({name: too_long})
    assert err.value.field == 'subject.%s' % name
    assert 'at most %d' % limit in str(err.value)


@pytest.mark.parametrize('value', ['Ali\nce', 'Ali\rce', 'tab\there', 'nul\x00', 'del\x7f', 'esc\x1b[31m'])
def test_control_characters_refused(value):
    with pytest.raises(InputError) as err:
        normalize_subject({'CN': value})
    assert err.value.field == 'subject.CN'
    assert 'control characters' in str(err.value)


def test_unknown_attribute_names_the_field():
    with pytest.raises(InputError) as err:
        normalize_subject({'CN': 'alice', 'favouriteColour': 'blue'})
    assert err.value.field == 'subject.favouriteColour'
    assert 'unknown subject attribute' in str(err.value)
    assert 'CN' in str(err.value)  # lists the known ones


def test_unknown_attribute_under_another_field():
    with pytest.raises(InputError) as err:
        normalize_subject({'X': '1'}, field='policy.required_subject')
    assert err.value.field == 'policy.required_subject.X'


@pytest.mark.parametrize('subject, field', [
    ({'CN': ''}, 'subject.CN'),
    ({'CN': '   '}, 'subject.CN'),
    ({'CN': None}, 'subject.CN'),
    ({'CN': {'nested': 1}}, 'subject.CN'),
    ({'CN': True}, 'subject.CN'),
    ({'OU': ['ok', '']}, 'subject.OU'),
    ({'CN': 'a', 'commonName': 'b'}, 'subject.commonName'),
    ({'emailAddress': 'not-an-address'}, 'subject.emailAddress'),
    ('CN=alice', 'subject'),
    (['CN', 'alice'], 'subject'),
])
def test_malformed_subjects(subject, field):
    with pytest.raises(InputError) as err:
        normalize_subject(subject)
    assert err.value.field == field


# -- subjectAltNames ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('entry, expected', [
    ('email:alice@Example.ORG', 'email:alice@example.org'),
    ('Email: Alice@example.org ', 'email:Alice@example.org'),
    ('rfc822:bob@example.org', 'email:bob@example.org'),
    ('DNS:Host.Example.org', 'DNS:host.example.org'),
    ('dns:host.example.org.', 'DNS:host.example.org'),
    ('DNS:localhost', 'DNS:localhost'),
    ('URI:https://id.example.org/users/alice', 'URI:https://id.example.org/users/alice'),
    ('uri:urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66', 'URI:urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66'),
    ('UPN:alice@corp.example.org', 'UPN:alice@corp.example.org'),
    ('upn:Alice.Smith@CORP.example', 'UPN:Alice.Smith@CORP.example'),
    ('IP:10.1.2.3', 'IP:10.1.2.3'),
    ('IP:2001:DB8:0:0::1', 'IP:2001:db8::1'),
    ('ip address:192.0.2.1', 'IP:192.0.2.1'),
])
def test_normalize_san(entry, expected):
    assert normalize_san(entry) == expected


@pytest.mark.parametrize('entry', [
    'alice@example.org', 'email:', 'email:alice', 'email:alice@', 'email:al ice@example.org', 'email:a@b',
    'DNS:', 'DNS:-bad.example.org', 'DNS:under_score.example.org', 'DNS:spaces in.example.org', 'DNS:a..b',
    'DNS:' + 'a' * 64 + '.example.org', 'URI:no-scheme', 'URI:https://example.org/with space',
    'UPN:alice', 'UPN:@corp.example', 'IP:999.1.1.1', 'IP:10.0.0', 'IP:host', 'X400:foo', 'otherName:1.2.3;UTF8:x',
    42, None, ['email:a@example.org'],
])
def test_malformed_san(entry):
    with pytest.raises(InputError) as err:
        normalize_san(entry)
    assert err.value.field == 'sans'


def test_normalize_sans_dedupes_sorts_and_adds_email():
    sans = normalize_sans(['DNS:b.example.org', 'dns:B.example.org', 'email:z@example.org', 'IP:10.0.0.1'],
                          email=' Alice@Example.org ')
    assert sans == sorted({'DNS:b.example.org', 'email:z@example.org', 'IP:10.0.0.1', 'email:Alice@example.org'})
    assert len(sans) == 4
    assert normalize_sans(None) == []


def test_normalize_sans_refuses_non_lists_and_bad_email():
    with pytest.raises(InputError) as err:
        normalize_sans('email:a@example.org')
    assert err.value.field == 'sans'
    with pytest.raises(InputError) as err:
        normalize_sans([], email='not-an-email')
    assert err.value.field == 'email'


@pytest.mark.parametrize('san, domain', [
    ('email:a@Example.ORG', 'example.org'), ('UPN:a@Corp.Example', 'corp.example'),
    ('DNS:h.example.org', 'h.example.org'),
    ('URI:https://example.org/', None), ('IP:10.0.0.1', None),
])
def test_san_domain(san, domain):
    assert san_domain(san) == domain


def test_general_names_round_trip_every_kind():
    sans = normalize_sans(['email:a@example.org', 'DNS:h.example.org', 'URI:https://example.org/a',
                           'UPN:a@corp.example', 'IP:192.0.2.7', 'IP:2001:db8::7'])
    names = [san_to_general_name(s) for s in sans]
    assert {type(n) for n in names} == {x509.RFC822Name, x509.DNSName, x509.UniformResourceIdentifier,
                                        x509.OtherName, x509.IPAddress}
    assert general_names_to_sans(names) == sans


def test_unknown_general_names_are_named_not_dropped():
    names = [x509.RegisteredID(x509.ObjectIdentifier('1.2.3.4')),
             x509.OtherName(x509.ObjectIdentifier(UPN_OID), b'\x04\x01x')]
    assert general_names_to_sans(names) == sorted(['otherName:' + UPN_OID, 'other:RegisteredID'])


@pytest.mark.parametrize('upn', ['alice@corp.example.org', 'u' * 150 + '@corp.example'])
def test_upn_other_name_round_trip_through_a_real_certificate(ca, tmp_path, upn):
    result = ca.ensure('alice', sans=['UPN:' + upn, 'email:alice@example.org'])
    certificate = x509.load_pem_x509_certificate(result['certificate'].encode())
    assert certificate_sans(certificate) == sorted(['UPN:' + upn, 'email:alice@example.org'])
    assert result['sans'] == certificate_sans(certificate)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    other = san.get_values_for_type(x509.OtherName)
    assert [o.type_id.dotted_string for o in other] == [UPN_OID]
    # OpenSSL decodes the otherName as a UTF8String UPN: the encoding is standard, not merely self-consistent
    pem = tmp_path / 'cert.pem'
    pem.write_text(result['certificate'])
    text = subprocess.run(['openssl', 'x509', '-noout', '-ext', 'subjectAltName', '-in', str(pem)],
                          capture_output=True, check=True).stdout.decode('utf-8')
    assert 'UPN:' in text
    assert upn in text


@pytest.mark.parametrize('subject, fallback, expected', [
    ({'CN': 'Example CA', 'O': 'Example'}, None, 'Example CA'),
    ({'CN': ['first', 'second']}, 'fallback', 'first'),
    ({'O': 'Example', 'C': 'DE'}, 'CA', 'CA'),
    ({'O': 'Example', 'C': 'DE'}, None, 'O=Example,C=DE'),
])
def test_common_name(subject, fallback, expected):
    assert common_name(subject_to_name(normalize_subject(subject)), fallback) == expected
