# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import normalize_sans, normalize_subject
from ansible_collections.certfleet.pki.plugins.module_utils.ca.policy import POLICY_KEYS, Policy
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, PolicyError

UTC = datetime.timezone.utc
POLICY = {
    'allowed_domains': ['example.org', '.Corp.Example', '*.lab.example.net'],
    'required_subject': {'O': 'Example Org', 'C': 'DE', 'L': 'Berlin'},
    'max_valid_days': 398,
    'allowed_key_types': ['ec-p256', 'rsa2048'],
}


@pytest.fixture
def policy_ca(make_ca):
    return make_ca('policy', policy=POLICY)


# -- parsing --------------------------------------------------------------------------------------------------

def test_from_params_normalises_and_round_trips():
    policy = Policy.from_params(POLICY)
    assert policy.allowed_domains == ['corp.example', 'example.org', 'lab.example.net']
    assert policy.required_subject == {'O': ['Example Org'], 'C': ['DE'], 'L': ['Berlin']}
    assert policy.max_valid_days == 398
    assert policy.allowed_key_types == ['ec-p256', 'rsa2048']
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.from_params(None) == Policy()
    assert policy.display()['required_subject'] == {'O': 'Example Org', 'C': 'DE', 'L': 'Berlin'}


@pytest.mark.parametrize('value, field', [
    ({'allowed_domain': ['example.org']}, 'policy.allowed_domain'),
    ({'max_valid_days': 30, 'colour': 'red'}, 'policy.colour'),
    ('example.org', 'policy'),
    ({'allowed_domains': 'example.org'}, 'policy.allowed_domains'),
    ({'allowed_domains': ['example.org', '']}, 'policy.allowed_domains'),
    ({'allowed_domains': [None]}, 'policy.allowed_domains'),
    ({'allowed_key_types': 'rsa2048'}, 'policy.allowed_key_types'),
    ({'allowed_key_types': ['rsa1024']}, 'policy.allowed_key_types'),
    ({'max_valid_days': 0}, 'policy.max_valid_days'),
    ({'max_valid_days': -5}, 'policy.max_valid_days'),
    ({'max_valid_days': 'a year'}, 'policy.max_valid_days'),
    ({'required_subject': {'C': 'de'}}, 'policy.required_subject.C'),
    ({'required_subject': {'Planet': 'Earth'}}, 'policy.required_subject.Planet'),
])
def test_from_params_refuses(value, field):
    with pytest.raises(InputError) as err:
        Policy.from_params(value)
    assert err.value.field == field


def test_unknown_policy_key_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        Policy.from_params({'alowed_domains': ['example.org']})
    for key in POLICY_KEYS:
        assert key in str(err.value)


def test_ensure_ca_refuses_unknown_policy_key_and_writes_nothing(tmp_path, clock):
    path = tmp_path / 'ca'
    with pytest.raises(InputError) as err:
        ensure_ca(ca_path=str(path), ca_passphrase='pw', subject={'CN': 'CA'}, key_type='ec-p256',
                  policy={'maximum_days': 30}, clock=clock)
    assert err.value.field == 'policy.maximum_days'
    assert not path.exists()


# -- domains --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('domain, allowed', [
    ('example.org', True), ('EXAMPLE.org', True), ('mail.example.org', True), ('a.b.example.org', True),
    ('corp.example', True), ('x.lab.example.net', True), ('lab.example.net', True),
    ('example.net', False), ('badexample.org', False), ('example.org.evil.com', False), ('org', False),
    ('xcorp.example', False),
])
def test_domain_allowed_exact_and_subdomains(domain, allowed):
    assert Policy.from_params(POLICY).domain_allowed(domain) is allowed


def test_no_allowed_domains_means_any():
    assert Policy().domain_allowed('anything.example') is True


@pytest.mark.parametrize('sans, email, field', [
    (['email:alice@evil.com'], None, 'sans'),
    (['DNS:host.evil.com'], None, 'sans'),
    (['UPN:alice@evil.corp'], None, 'sans'),
    (['DNS:example.org.evil.com'], None, 'sans'),
    ([], 'alice@evil.com', 'email'),
])
def test_check_names_refuses_foreign_domains(sans, email, field):
    policy = Policy.from_params(POLICY)
    wanted_sans = normalize_sans(sans, email)
    with pytest.raises(PolicyError) as err:
        policy.check_names({'CN': ['alice']}, wanted_sans, email=email)
    assert err.value.field == field
    assert 'evil' in str(err.value)
    assert 'policy.allowed_domains' in str(err.value)


def test_check_names_accepts_allowed_names_and_ignores_uri_and_ip():
    policy = Policy.from_params(POLICY)
    sans = normalize_sans(['email:alice@example.org', 'DNS:ws1.corp.example', 'UPN:alice@corp.example',
                           'URI:https://evil.com/alice', 'IP:192.0.2.1'], 'bob@Mail.Example.org')
    policy.check_names({'CN': ['alice'], 'emailAddress': ['alice@example.org']}, sans, email='bob@mail.example.org')


def test_check_names_refuses_subject_email_address():
    policy = Policy.from_params(POLICY)
    with pytest.raises(PolicyError) as err:
        policy.check_names({'CN': ['alice'], 'emailAddress': ['alice@evil.com']}, [])
    assert err.value.field == 'subject.emailAddress'
    assert "'evil.com'" in str(err.value)


# -- required subject -----------------------------------------------------------------------------------------

def test_complete_subject_fills_registered_values():
    policy = Policy.from_params(POLICY)
    completed = policy.complete_subject(normalize_subject({'CN': 'alice', 'O': 'Example Org'}))
    assert completed == {'CN': ['alice'], 'O': ['Example Org'], 'C': ['DE'], 'L': ['Berlin']}


@pytest.mark.parametrize('attribute, value', [('O', 'Evil Corp'), ('C', 'FR'), ('L', 'Paris')])
def test_complete_subject_mismatch_names_the_field(attribute, value):
    policy = Policy.from_params(POLICY)
    with pytest.raises(PolicyError) as err:
        policy.complete_subject(normalize_subject({'CN': 'alice', attribute: value}))
    assert err.value.field == 'subject.%s' % attribute
    assert repr(value) in str(err.value)
    assert repr(policy.required_subject[attribute][0]) in str(err.value)
    assert 'policy.required_subject' in str(err.value)


# -- through the CA: what build_wanted enforces, and that nothing is written ---------------------------------------

def test_issued_subject_carries_required_attributes(policy_ca):
    result = policy_ca.ensure('alice', subject={'CN': 'alice'}, email='alice@example.org')
    certificate = x509.load_pem_x509_certificate(result['certificate'].encode())
    values = {attribute.rfc4514_attribute_name: attribute.value for attribute in certificate.subject}
    assert values == {'CN': 'alice', 'O': 'Example Org', 'C': 'DE', 'L': 'Berlin'}


@pytest.mark.parametrize('params, error, field, words', [
    ({'subject': {'CN': 'alice', 'O': 'Evil Corp'}}, PolicyError, 'subject.O', ['Evil Corp', 'Example Org']),
    ({'email': 'alice@evil.com'}, PolicyError, 'email', ['evil.com']),
    ({'sans': ['DNS:host.evil.com']}, PolicyError, 'sans', ['host.evil.com']),
    ({'sans': ['UPN:alice@evil.corp']}, PolicyError, 'sans', ['evil.corp']),
    ({'subject': {'CN': 'alice', 'E': 'alice@evil.com'}}, PolicyError, 'subject.emailAddress', ['evil.com']),
    ({'valid_days': 399}, PolicyError, 'valid_days', ['399', 'max_valid_days', '398']),
    ({'key_type': 'ec-p384'}, PolicyError, 'key_type', ['ec-p384', 'allowed_key_types']),
    ({'subject': {'CN': 'alice', 'C': 'de'}}, InputError, 'subject.C', ['two-letter']),
])
def test_policy_violations_name_field_and_rule_and_write_nothing(policy_ca, params, error, field, words):
    before = policy_ca.snapshot()
    with pytest.raises(error) as err:
        policy_ca.ensure('alice', **params)
    assert err.value.field == field
    for word in words:
        assert word in str(err.value)
    assert policy_ca.snapshot() == before


def test_csr_key_type_outside_policy_names_csr(policy_ca):
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, 'alice')]))
           .sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.PEM).decode())
    before = policy_ca.snapshot()
    with pytest.raises(PolicyError) as err:
        policy_ca.ensure('alice', csr=csr)
    assert err.value.field == 'csr'
    assert 'ec-p384' in str(err.value)
    assert policy_ca.snapshot() == before


def test_max_valid_days_boundary_is_allowed(policy_ca):
    result = policy_ca.ensure('alice', valid_days=398)
    assert result['action'] == 'issued'
    certificate = x509.load_pem_x509_certificate(result['certificate'].encode())
    lifetime = certificate.not_valid_after_utc - policy_ca.clock()
    assert lifetime == datetime.timedelta(days=398)


def test_validity_beyond_ca_not_after_is_refused(make_ca):
    short = make_ca('short', valid_days=30)
    before = short.snapshot()
    with pytest.raises(PolicyError) as err:
        short.ensure('alice', valid_days=31)
    assert err.value.field == 'valid_days'
    assert 'after the CA certificate expires' in str(err.value)
    assert short.snapshot() == before
    assert short.ensure('alice', valid_days=29)['action'] == 'issued'


def test_check_validity_directly():
    policy = Policy(max_valid_days=10)
    now = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    ca_end = now + datetime.timedelta(days=100)
    policy.check_validity(10, now + datetime.timedelta(days=10), ca_end)
    with pytest.raises(PolicyError, match='max_valid_days'):
        policy.check_validity(11, now + datetime.timedelta(days=11), ca_end)
    with pytest.raises(PolicyError, match='after the CA certificate expires'):
        Policy().check_validity(101, now + datetime.timedelta(days=101), ca_end)


def test_policy_update_applies_to_next_issuance(make_ca):
    harness = make_ca('evolving')
    assert harness.ensure('alice', email='alice@evil.com')['action'] == 'issued'
    updated = ensure_ca(ca_path=harness.path, ca_passphrase=harness.passphrase,
                        subject={'CN': 'Certfleet Test Client CA', 'O': 'Example Org', 'C': 'DE'}, key_type='ec-p256',
                        policy={'allowed_domains': ['example.org']}, clock=harness.clock)
    assert updated['action'] == 'updated'
    with pytest.raises(PolicyError) as err:
        harness.ensure('bob', email='bob@evil.com')
    assert err.value.field == 'email'
    assert harness.ensure('bob', email='bob@example.org')['action'] == 'issued'
