# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.x509.issuer import (
    issued_by, issuer_mismatch, refuse_foreign,
)


def _name(cn: str):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                   .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .sign(key, hashes.SHA256()))
    return certificate, key


def _leaf(ca, ca_key, with_aki: bool = True):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name('alice')).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(2).not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(days=1)))
    if with_aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope='module')
def cas():
    return {'ca': _ca('Example CA'), 'twin': _ca('Example CA'), 'other': _ca('Other CA')}


def test_issued_by_checks_name_and_signature(cas):
    ca, ca_key = cas['ca']
    leaf = _leaf(ca, ca_key)
    assert issued_by(leaf, ca)
    assert not issued_by(leaf, cas['twin'][0])  # same name, another key: the signature does not verify
    assert not issued_by(leaf, cas['other'][0])
    assert issued_by(ca, ca)  # self-signed


def test_mismatch_by_name(cas):
    ca, ca_key = cas['ca']
    leaf = _leaf(ca, ca_key)
    assert issuer_mismatch(leaf, cas['other'][0]) == 'was issued by CN=Example CA, not by this CA (CN=Other CA)'


@pytest.mark.parametrize('with_aki', [True, False])
def test_mismatch_by_key_identifier_for_two_cas_of_one_name(cas, with_aki):
    ca, ca_key = cas['ca']
    twin = cas['twin'][0]
    leaf = _leaf(ca, ca_key, with_aki)
    authority = (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()).key_identifier.hex().upper()
                 if with_aki else 'none')
    twin_key = x509.SubjectKeyIdentifier.from_public_key(twin.public_key()).digest.hex().upper()
    assert issuer_mismatch(leaf, twin) == (
        "was issued by another CA of the same name CN=Example CA, not by this CA (the certificate's authority key "
        "id is %s, this CA's key id is %s)" % (authority, twin_key))


def test_refuse_foreign_names_the_first_foreign_certificate_and_the_field(cas):
    ca, ca_key = cas['ca']
    own = _leaf(ca, ca_key)
    twin, twin_key = cas['twin']
    foreign = _leaf(twin, twin_key)
    refuse_foreign([('1', own), ('2', own)], ca)  # all of this CA: nothing to refuse
    refuse_foreign([], ca)
    with pytest.raises(InputError) as error:
        refuse_foreign([('1', own), ('AB', foreign)], ca)
    assert error.value.field == 'issuer'
    assert str(error.value).startswith('certificate AB (CN=alice) was issued by another CA of the same name CN=Example '
                                       'CA, not by the given issuer (')
    assert str(error.value).endswith('; nothing was removed')
    with pytest.raises(InputError) as error:
        refuse_foreign([('CD', _leaf(ca, ca_key))], cas['other'][0], 'ca_certificate')
    assert error.value.field == 'ca_certificate'
    assert str(error.value) == ('certificate CD (CN=alice) was issued by CN=Example CA, not by the given issuer '
                                '(CN=Other CA); nothing was removed')
