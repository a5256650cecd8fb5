# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real SMTP server for the notice tests (fixtures the tests import): aiosmtpd on 127.0.0.1 (a free port),
capturing every message; with STARTTLS (a throw-away CA and server certificate) and AUTH when asked.
Stopped after each test."""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass, field

import pytest

aiosmtpd_controller = pytest.importorskip('aiosmtpd.controller')
aiosmtpd_smtp = pytest.importorskip('aiosmtpd.smtp')

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

SMTP_USER = 'certfleet'
SMTP_PASSWORD = 'smtp-Pa55word-never-in-mail'


class Capture:
    """The handler: keeps what arrives (envelope sender, recipients, bytes)."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # pylint: disable=invalid-name,unused-argument
        self.messages.append({'from': envelope.mail_from, 'to': list(envelope.rcpt_tos),
                              'data': bytes(envelope.original_content or envelope.content)})
        return '250 OK'


@dataclass
class SmtpServer:
    port: int
    capture: Capture
    ca_file: str | None = None
    settings: dict = field(default_factory=dict)

    @property
    def messages(self) -> list:
        return self.capture.messages


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def make_certificate(subject: str, issuer=None, *, ca=False, sans=None, usage=None):
    """(certificate, key): a CA when ``issuer`` is None, else a leaf signed by ``issuer`` = (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if issuer is None:
        return builder.issuer_name(name).sign(key, hashes.SHA256()), key
    return builder.issuer_name(issuer[0].subject).sign(issuer[1], hashes.SHA256()), key


def write_pem(path, certificate=None, key=None) -> str:
    data = b''
    if certificate is not None:
        data += certificate.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def tls_material(tmp_path):
    """A throw-away CA and a server certificate for 127.0.0.1: (ca file, server TLS context)."""
    import ipaddress
    authority = make_certificate('SMTP Test CA', ca=True)
    server = make_certificate('127.0.0.1', authority, sans=[x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
                                                            x509.DNSName('localhost')],
                              usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    ca_file = write_pem(tmp_path / 'smtp-ca.pem', authority[0])
    chain = write_pem(tmp_path / 'smtp-server.pem', server[0], server[1])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return ca_file, context


def _authenticator(server, session, envelope, mechanism, auth_data):  # pylint: disable=unused-argument
    ok = (isinstance(auth_data, aiosmtpd_smtp.LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    # handled=False: aiosmtpd answers a refusal with 535 itself (the default would leave the client waiting).
    return aiosmtpd_smtp.AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server():
    """A plain SMTP server on 127.0.0.1 (no TLS, no AUTH)."""
    capture = Capture()
    port = _free_port()
    controller = aiosmtpd_controller.Controller(capture, hostname='127.0.0.1', port=port)
    controller.start()
    try:
        yield SmtpServer(port, capture, settings={'host': '127.0.0.1', 'port': port, 'security': 'none',
                                                  'from': 'ca@example.org', 'to': ['officer@example.org']})
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(tls_material):
    """An SMTP server requiring STARTTLS, with AUTH (user SMTP_USER, password SMTP_PASSWORD) over TLS only."""
    ca_file, context = tls_material
    capture = Capture()
    port = _free_port()
    controller = aiosmtpd_controller.Controller(
        capture, hostname='127.0.0.1', port=port, tls_context=context, require_starttls=True,
        authenticator=_authenticator, auth_require_tls=True, auth_required=True)
    controller.start()
    try:
        yield SmtpServer(port, capture, ca_file=ca_file, settings={
            'host': '127.0.0.1', 'port': port, 'security': 'starttls', 'from': 'ca@example.org',
            'to': ['officer@example.org'], 'username': SMTP_USER, 'password': SMTP_PASSWORD, 'ca_file': ca_file})
    finally:
        controller.stop()


@pytest.fixture
def tls_server(tls_material):
    """An SMTPS server (TLS from the first byte, no AUTH)."""
    ca_file, context = tls_material
    capture = Capture()
    port = _free_port()
    controller = aiosmtpd_controller.Controller(capture, hostname='127.0.0.1', port=port, ssl_context=context)
    controller.start()
    try:
        yield SmtpServer(port, capture, ca_file=ca_file, settings={
            'host': '127.0.0.1', 'port': port, 'security': 'tls', 'from': 'ca@example.org',
            'to': ['officer@example.org'], 'ca_file': ca_file})
    finally:
        controller.stop()
