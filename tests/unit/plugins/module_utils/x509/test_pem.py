# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import (
    load_certificates, load_pem_certificate, read_pem_argument,
)


def _certificate(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(3).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))


@pytest.fixture(scope='module')
def pem():
    return _certificate('pem test').public_bytes(serialization.Encoding.PEM).decode('ascii')


def test_load_pem_certificate_from_text_and_from_a_path(pem, tmp_path, monkeypatch):
    path = tmp_path / 'ca.pem'
    path.write_text(pem)
    assert load_pem_certificate(pem, 'ca_certificate') == load_pem_certificate(str(path), 'ca_certificate')
    monkeypatch.setenv('HOME', str(tmp_path))
    assert load_pem_certificate('~/ca.pem', 'issuer').subject.rfc4514_string() == 'CN=pem test'


@pytest.mark.parametrize('content, message', [
    (None, 'does not exist'),
    ('not a certificate', 'is not a PEM certificate'),
    ('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'is not a PEM certificate'),
])
def test_load_pem_certificate_errors_name_the_field(tmp_path, content, message):
    path = tmp_path / 'ca.pem'
    if content is not None:
        path.write_text(content)
    value = content if content and '-----BEGIN' in content else str(path)
    with pytest.raises(InputError) as error:
        load_pem_certificate(value, 'issuer')
    assert error.value.field == 'issuer'
    assert message in str(error.value)


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads files whatever their mode')
def test_unreadable_file_says_so(pem, tmp_path):
    path = tmp_path / 'ca.pem'
    path.write_text(pem)
    path.chmod(0)
    with pytest.raises(InputError, match='cannot be read') as error:
        load_pem_certificate(str(path), 'ca_certificate')
    assert error.value.field == 'ca_certificate'


def test_read_pem_argument_and_load_certificates_read_a_chain(pem, tmp_path):
    second = _certificate('second').public_bytes(serialization.Encoding.PEM).decode('ascii')
    path = tmp_path / 'chain.pem'
    path.write_text(pem + second)
    data = read_pem_argument(str(path), 'import_chain')
    assert read_pem_argument(pem + second, 'import_chain') == data
    names = [c.subject.rfc4514_string() for c in load_certificates(data, 'import_chain')]
    assert names == ['CN=pem test', 'CN=second']


@pytest.mark.parametrize('value, message', [
    (None, 'is required'),
    ('/nonexistent/ca.pem', 'file /nonexistent/ca.pem does not exist (expected a path or PEM text)'),
])
def test_read_pem_argument_errors(value, message):
    with pytest.raises(InputError, match=message.replace('(', r'\(').replace(')', r'\)')) as error:
        read_pem_argument(value, 'import_certificate')
    assert error.value.field == 'import_certificate'


def test_load_certificates_refuses_what_is_not_pem():
    with pytest.raises(InputError, match='is not a PEM certificate') as error:
        load_certificates(b'garbage', 'import_chain')
    assert error.value.field == 'import_chain'
