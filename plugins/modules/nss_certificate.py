#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nss_certificate
short_description: Import or remove client certificates and CA certificates in an NSS database (Firefox, Chromium)
version_added: 0.1.0
description:
  - With O(state=present), imports a PKCS#12 file (certificate and private key) with C(pk12util), and adds a CA
    certificate with the trust flags O(trust). Idempotent by SHA-256 fingerprint; a certificate that is already
    there with its key is not imported again, whatever its nickname.
  - With O(state=absent), removes certificates together with their private keys, selected by
    O(fingerprint_sha256), O(serial) or O(nickname) (all given selectors must match), or every certificate with a
    key issued by O(issuer) except those in O(keep_fingerprint_sha256).
  - After a renewal, the superseded certificates are best removed by the list the CA keeps, the C(superseded)
    fingerprints of M(certfleet.pki.client_certificate_info), given to O(fingerprint_sha256) with O(issuer) as the
    guard; that is what the C(certfleet.pki.deploy) role does. The sweep by O(issuer) alone also takes other
    identities of the same CA in the same database, and is meant for a database that holds one identity of that CA.
  - Removal is exact. NSS gives every certificate of one subject the same nickname, so after a renewal the old and
    the new certificate share it and C(certutil -D -n NICKNAME) may delete the new one. This module deletes a
    certificate with a key by its PKCS#11 ID (derived from its public key) and then that key, so only the selected
    certificate goes, also when old and new have the same subject. A certificate without a key that shares its
    nickname with another one cannot be deleted exactly and is refused.
  - Works while Firefox or Chromium is running, because the C(sql:) database is SQLite, shared between processes.
  - The PKCS#12 file is opened first (with O(pkcs12_password)), so a wrong password or a corrupt file fails before
    anything is written. A CA certificate that did not issue the PKCS#12 certificate is refused.
  - The result lists what the database holds afterwards (subjects, serials, fingerprints, nicknames); never a key
    or a password.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.nss
attributes:
  check_mode:
    description: Opens the PKCS#12 file and reads the database, and reports what would be created, imported,
      trusted or removed without writing anything.
    support: full
  diff_mode:
    description: Shows nickname, serial and fingerprint of every certificate before and after, and whether it has
      a key; never key material.
    support: full
  idempotent:
    description: A second run with the same parameters reports C(changed=false).
    support: full
options:
  create_db:
    description:
      - Create the database (and its folder, mode C(0700)) when O(db) holds none, for example in a Firefox profile
        that Firefox has never opened. With O(db_password) the new database is protected by that token password,
        otherwise by an empty one.
      - Only used with O(state=present). Without it a missing database is an error.
    type: bool
    default: false
  db_password:
    description:
      - The token (primary) password of the database.
      - Required to import a PKCS#12 file or remove a certificate with its key when the database has one; without
        it the module fails, naming O(db_password), and changes nothing. Adding a CA certificate does not need it.
      - Handed to C(certutil) and C(pk12util) through a C(0600) file that is removed afterwards.
    type: str
  state:
    description:
      - V(present) imports O(pkcs12_path) and/or adds O(ca_certificate); at least one of them is required.
      - V(absent) removes the certificates that O(fingerprint_sha256), O(serial), O(nickname) or O(issuer) select.
        Certificates that are not there are not an error.
    type: str
    choices: [present, absent]
    default: present
  pkcs12_path:
    description:
      - A PKCS#12 (C(.p12)/C(.pfx)) file on the target with the certificate and its private key, for example from
        M(certfleet.pki.client_certificate_export). AES (PBES2) and 3DES files both work.
      - CA certificates inside it are imported too, without trust.
    type: path
  pkcs12_password:
    description: The password of O(pkcs12_path). Required with it.
    type: str
  ca_certificate:
    description:
      - A CA certificate to add with O(trust), PEM text or the path of a PEM file on the target.
      - When it is already in the database (for example imported from a PKCS#12 chain) only its trust is
        completed.
    type: str
  ca_nickname:
    description: Nickname of an added O(ca_certificate). Defaults to its common name.
    type: str
  trust:
    description:
      - NSS trust flags of O(ca_certificate), C(SSL,S/MIME,code signing) as for C(certutil -t).
      - The default C(T,,) trusts the CA to issue client certificates only. C(CT,,) would also trust it to issue
        TLS server certificates, so whoever holds the client CA key could then impersonate any web site to this
        browser. A client CA must not be trusted for servers; use C(CT,,) only for a CA that really issues the
        server certificates the browser connects to.
      - Flags the CA already has are kept; missing ones are added. The module never removes trust flags.
    type: str
    default: T,,
  fingerprint_sha256:
    description:
      - With O(state=absent), remove the certificate with this SHA-256 fingerprint, or the certificates with any of
        these SHA-256 fingerprints (hex, colons and case do not matter). A single fingerprint may be given as a
        string.
      - The C(certfleet.pki.deploy) role, through the C(firefox_nss) and C(chromium_nss) roles, passes the CA's
        C(superseded) fingerprints of the identity here, so exactly those certificates go.
      - An empty list selects nothing and removes nothing; it does not fall back to removal by O(issuer) alone.
      - A fingerprint that is also in O(keep_fingerprint_sha256) is kept.
    type: list
    elements: str
  serial:
    description:
      - With O(state=absent), remove certificates with this serial number, or with any of these serial numbers
        (hex; colons, C(0x), leading zeros and case do not matter).
      - The C(certfleet.pki.deploy) role passes the older serials of one identity here, so other identities from the
        same CA in the same database are left alone.
    type: list
    elements: str
    aliases: [serials]
  nickname:
    description:
      - With O(state=absent), remove certificates with this nickname.
      - A nickname may name several certificates (same subject); all of them are selected. Prefer
        O(fingerprint_sha256).
    type: str
  issuer:
    description:
      - A CA certificate, PEM text or a path on the target.
      - With O(state=absent) and no other selector, removes every certificate with a private key that this CA
        issued (checked by signature, not only by name), except those in O(keep_fingerprint_sha256). CA
        certificates and certificates without a key are kept. This takes every identity of this CA in the
        database; where the database may hold more than one, give the CA's list in O(fingerprint_sha256) instead.
      - With O(fingerprint_sha256), O(serial) or O(nickname) it is a guard; when a selected certificate was not
        issued by this CA the module fails, naming O(issuer), and removes nothing.
    type: str
  keep_fingerprint_sha256:
    description:
      - SHA-256 fingerprints of certificates that O(state=absent) must never remove, typically the current
        certificate when removing superseded ones, whether by O(fingerprint_sha256) or by O(issuer) alone.
    type: list
    elements: str
    default: []
seealso:
  - module: certfleet.pki.nss_certificate_info
  - module: certfleet.pki.firefox_profile_info
  - module: certfleet.pki.client_certificate_export
'''

EXAMPLES = r'''
- name: Alice's certificate and the CA are in her Firefox profile
  certfleet.pki.nss_certificate:
    db: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
    create_db: true
    pkcs12_path: /tmp/alice.p12
    pkcs12_password: "{{ vault_alice_p12_password }}"
    ca_certificate: /etc/certfleet/client-ca.pem
  become: true
  become_user: alice
  register: firefox_import

- name: The CA's record of alice's certificates is read
  certfleet.pki.client_certificate_info:
    ca_path: /var/lib/certfleet/ca
    identity: alice
  delegate_to: ca.example.org
  register: alice_record

- name: Exactly the certificates the CA lists as superseded are gone from the profile, the current one stays
  certfleet.pki.nss_certificate:
    db: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
    state: absent
    fingerprint_sha256: "{{ alice_record.superseded | map(attribute='fingerprint_sha256') | list }}"
    issuer: /etc/certfleet/client-ca.pem
    keep_fingerprint_sha256:
      - "{{ alice_cert.fingerprint_sha256 }}"
  become: true
  become_user: alice

- name: In a profile that holds only alice's certificates of this CA, every other one goes
  certfleet.pki.nss_certificate:
    db: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
    state: absent
    issuer: /etc/certfleet/client-ca.pem
    keep_fingerprint_sha256:
      - "{{ alice_cert.fingerprint_sha256 }}"
  become: true
  become_user: alice

- name: Chromium's database, protected by a token password, holds the certificate
  certfleet.pki.nss_certificate:
    db: sql:/home/alice/.local/share/pki/nssdb
    db_password: "{{ vault_alice_nss_password }}"
    pkcs12_path: /tmp/alice.p12
    pkcs12_password: "{{ vault_alice_p12_password }}"
  become: true
  become_user: alice

- name: A certificate that leaked is removed, but only if it is really from our CA
  certfleet.pki.nss_certificate:
    db: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
    state: absent
    serial: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
    issuer: /etc/certfleet/client-ca.pem
  become: true
  become_user: alice
'''

RETURN = r'''
db:
  description: Absolute path of the database folder (without C(sql:)).
  returned: always
  type: str
  sample: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
created:
  description: Whether the database was created (in check mode, would be).
  returned: always
  type: bool
imported:
  description: SHA-256 fingerprint of the certificate imported from O(pkcs12_path) (in check mode, that would be),
    C(null) when it was already there with its key.
  returned: always
  type: str
  sample: 3C5E0F0B8D2A6F4E1B9C7D5A3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F
ca_changed:
  description: C(add) when O(ca_certificate) was added, C(trust) when only its trust flags were completed,
    C(null) otherwise.
  returned: always
  type: str
removed:
  description: The certificates removed (in check mode, that would be), with the keys of RV(certificates).
    Empty when nothing was selected, for example an empty O(fingerprint_sha256) list.
  returned: always
  type: list
  elements: dict
certificates:
  description: Every certificate the database holds afterwards (in check mode, would hold, except for a
    certificate that would be imported).
  returned: always
  type: list
  elements: dict
  contains:
    nickname:
      description: The NSS nickname (shared by certificates of the same subject).
      type: str
    trust:
      description: NSS trust flags, for example C(u,u,u) for a certificate with a key or C(T,,) for a client CA.
      type: str
    subject:
      description: Subject, RFC 4514.
      type: str
    issuer:
      description: Issuer, RFC 4514.
      type: str
    serial:
      description: Serial number, upper-case hex without colons or leading zeros.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint, upper-case hex without colons.
      type: str
    fingerprint_sha1:
      description: SHA-1 fingerprint, upper-case hex without colons.
      type: str
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
    has_key:
      description: Whether the database holds the private key; C(null) when a token password protects the keys
        and O(db_password) was not given.
      type: bool
    is_ca:
      description: Whether it is a CA certificate (basicConstraints C(CA:true)).
      type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import require_cryptography, run
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.nss import (
    as_database_owner, ensure_nss_certificate,
)


def main():
    module = AnsibleModule(
        argument_spec={
            'db': {'type': 'path', 'required': True, 'aliases': ['profile', 'nssdb']},
            'create_db': {'type': 'bool', 'default': False},
            'db_password': {'type': 'str', 'no_log': True},
            'owner': {'type': 'str'},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            'pkcs12_path': {'type': 'path'},
            'pkcs12_password': {'type': 'str', 'no_log': True},
            'ca_certificate': {'type': 'str'},
            'ca_nickname': {'type': 'str'},
            'trust': {'type': 'str', 'default': 'T,,'},
            'fingerprint_sha256': {'type': 'list', 'elements': 'str'},
            'serial': {'type': 'list', 'elements': 'str', 'aliases': ['serials']},
            'nickname': {'type': 'str'},
            'issuer': {'type': 'str'},
            'keep_fingerprint_sha256': {'type': 'list', 'elements': 'str', 'default': []},
        },
        required_if=[
            ('state', 'present', ('pkcs12_path', 'ca_certificate'), True),
            ('state', 'absent', ('fingerprint_sha256', 'serial', 'nickname', 'issuer'), True),
        ],
        required_by={'pkcs12_path': 'pkcs12_password'},
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params
    certutil = module.get_bin_path('certutil', required=True)
    pk12util = module.get_bin_path('pk12util', required=True)

    def runner(args):
        return module.run_command(args, environ_update={'LC_ALL': 'C', 'LANG': 'C'}, expand_user_and_vars=False)

    run(module, lambda: as_database_owner(
        ensure_nss_certificate, db=params['db'], owner=params['owner'],
        db_password=params['db_password'], create_db=params['create_db'], state=params['state'],
        pkcs12_path=params['pkcs12_path'], pkcs12_password=params['pkcs12_password'],
        ca_certificate=params['ca_certificate'], ca_nickname=params['ca_nickname'], trust=params['trust'],
        fingerprint_sha256=params['fingerprint_sha256'], serial=params['serial'], nickname=params['nickname'],
        issuer=params['issuer'], keep_fingerprint_sha256=params['keep_fingerprint_sha256'],
        check_mode=module.check_mode, runner=runner, certutil=certutil, pk12util=pk12util))


if __name__ == '__main__':
    main()
