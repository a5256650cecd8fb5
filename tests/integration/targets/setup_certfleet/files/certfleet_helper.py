# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures the integration targets cannot get from the modules themselves: bad CSRs, foreign CAs, broken stores.

Usage (from a task, with the interpreter that runs the modules):
  certfleet_helper.py csr OUT --kind good|weak|bad-signature|garbage [--cn NAME] [--email ADDR]
  certfleet_helper.py ca-files OUTDIR [--expired] [--leaf] [--passphrase PASS]   -> OUTDIR/cert.pem, OUTDIR/key.pem
  certfleet_helper.py chain-files OUTDIR [--passphrase PASS]  -> root.pem, intermediate.pem, intermediate.key, other.pem
  certfleet_helper.py expired-ca-dir CA_PATH PASSPHRASE    (the library with a clock in the past; needs PYTHONPATH)
                                                           with one expired certificate, identity old-laptop
  certfleet_helper.py foreign-db PATH                      (an SQLite database of another application)
  certfleet_helper.py garbage PATH                         (bytes that are no database at all)
Prints one JSON line describing what it made.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sqlite3
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

UTC = datetime.timezone.utc


def _now():
    return datetime.datetime.now(UTC).replace(microsecond=0)


def _write(path, data: bytes, mode=0o600):
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)


def _key_pem(key, passphrase=None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(passphrase.encode('utf-8')) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _name(cn: str, org: str | None = None):
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attributes)


def _certificate(subject, issuer, public_key, signing_key, not_before, not_after, ca: bool):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    return builder.sign(signing_key, hashes.SHA256())


def cmd_csr(args) -> dict:
    if args.kind == 'garbage':
        _write(args.out, b'-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n')
        return {'csr': args.out}
    key = rsa.generate_private_key(65537, 1024) if args.kind == 'weak' else ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(args.cn, args.org))
    if args.email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(args.email)]), critical=False)
    request = builder.sign(key, hashes.SHA256())
    der = bytearray(request.public_bytes(serialization.Encoding.DER))
    if args.kind == 'bad-signature':
        der[-1] ^= 0x01  # the last byte belongs to the signature value
        request = x509.load_der_x509_csr(bytes(der))
        assert not request.is_signature_valid
    pem = request.public_bytes(serialization.Encoding.PEM)
    _write(args.out, pem, 0o644)
    if args.key_out:
        _write(args.key_out, _key_pem(key))
    return {'csr': args.out, 'kind': args.kind}


def cmd_ca_files(args) -> dict:
    os.makedirs(args.outdir, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    if args.expired:
        not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1000)
    subject = _name(args.cn, 'Helper Org')
    certificate = _certificate(subject, subject, key.public_key(), key, not_before, not_after, ca=not args.leaf)
    _write(os.path.join(args.outdir, 'cert.pem'), certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(os.path.join(args.outdir, 'key.pem'), _key_pem(key, args.passphrase))
    return {'cert': os.path.join(args.outdir, 'cert.pem'), 'key': os.path.join(args.outdir, 'key.pem'),
            'subject': subject.rfc4514_string()}


def cmd_chain_files(args) -> dict:
    os.makedirs(args.outdir, exist_ok=True)
    now = _now()
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = _name('Helper Offline Root', 'Helper Org')
    root = _certificate(root_name, root_name, root_key.public_key(), root_key, now - datetime.timedelta(days=1),
                        now + datetime.timedelta(days=3650), ca=True)
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate_name = _name('Helper Issuing CA', 'Helper Org')
    intermediate = _certificate(intermediate_name, root_name, intermediate_key.public_key(), root_key,
                                now - datetime.timedelta(days=1), now + datetime.timedelta(days=1825), ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = _name('Unrelated Root', 'Elsewhere')
    other = _certificate(other_name, other_name, other_key.public_key(), other_key, now - datetime.timedelta(days=1),
                         now + datetime.timedelta(days=3650), ca=True)
    pem = serialization.Encoding.PEM
    _write(os.path.join(args.outdir, 'root.pem'), root.public_bytes(pem), 0o644)
    _write(os.path.join(args.outdir, 'intermediate.pem'), intermediate.public_bytes(pem), 0o644)
    _write(os.path.join(args.outdir, 'intermediate.key'), _key_pem(intermediate_key, args.passphrase))
    _write(os.path.join(args.outdir, 'other.pem'), other.public_bytes(pem), 0o644)
    return {'root_subject': root_name.rfc4514_string(), 'intermediate_subject': intermediate_name.rfc4514_string()}


def cmd_expired_ca_dir(args) -> dict:
    # The library itself, with its clock turned back: the only honest way to get a CA directory whose CA expired.
    # It issued one certificate (valid for a day) back then, which has expired too.
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
    then = _now() - datetime.timedelta(days=10)
    result = ensure_ca(ca_path=args.ca_path, ca_passphrase=args.passphrase, subject={'CN': 'Expired Test CA'},
                       key_type='ec-p256', valid_days=2, clock=lambda: then)
    with ManagedCA(args.ca_path, args.passphrase, clock=lambda: then) as ca:
        wanted = ca.build_wanted(identity='old-laptop', subject={'CN': 'old-laptop'}, key_type='ec-p256',
                                 valid_days=1)
        issued = ca.ensure_certificate(wanted)
    return {'ca_path': args.ca_path, 'not_after': result['ca']['not_after'], 'expired_serial': issued['serial']}


def cmd_foreign_db(args) -> dict:
    connection = sqlite3.connect(args.path)
    connection.execute('CREATE TABLE recipes (name TEXT, minutes INTEGER)')
    connection.execute("INSERT INTO recipes VALUES ('soup', 30)")
    connection.commit()
    connection.close()
    return {'path': args.path}


def cmd_garbage(args) -> dict:
    _write(args.path, b'this is not a database\n' * 200)
    return {'path': args.path}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest='command', required=True)
    csr = commands.add_parser('csr')
    csr.add_argument('out')
    csr.add_argument('--kind', choices=['good', 'weak', 'bad-signature', 'garbage'], default='good')
    csr.add_argument('--cn', default='CSR Subject')
    csr.add_argument('--org')
    csr.add_argument('--email')
    csr.add_argument('--key-out')
    csr.set_defaults(func=cmd_csr)
    ca_files = commands.add_parser('ca-files')
    ca_files.add_argument('outdir')
    ca_files.add_argument('--expired', action='store_true')
    ca_files.add_argument('--leaf', action='store_true')
    ca_files.add_argument('--passphrase')
    ca_files.add_argument('--cn', default='Helper Imported CA')
    ca_files.set_defaults(func=cmd_ca_files)
    chain = commands.add_parser('chain-files')
    chain.add_argument('outdir')
    chain.add_argument('--passphrase')
    chain.set_defaults(func=cmd_chain_files)
    expired = commands.add_parser('expired-ca-dir')
    expired.add_argument('ca_path')
    expired.add_argument('passphrase')
    expired.set_defaults(func=cmd_expired_ca_dir)
    foreign = commands.add_parser('foreign-db')
    foreign.add_argument('path')
    foreign.set_defaults(func=cmd_foreign_db)
    garbage = commands.add_parser('garbage')
    garbage.add_argument('path')
    garbage.set_defaults(func=cmd_garbage)
    args = parser.parse_args(argv)
    print(json.dumps(args.func(args)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
