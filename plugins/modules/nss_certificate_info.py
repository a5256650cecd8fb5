#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nss_certificate_info
short_description: List the certificates of an NSS database (Firefox profile, Chromium nssdb)
version_added: 0.1.0
description:
  - Lists every certificate the database holds, with nickname, trust flags, subject, issuer, serial, fingerprints,
    validity and whether its private key is there. Filters O(issuer), O(fingerprint_sha256) and O(serial) combine.
  - A folder without a database (or that does not exist) gives C(exists=false) and an empty list, not an error.
  - Never writes anything (it only runs C(certutil -L) and C(certutil -K)) and never returns a key or a password.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.nss
attributes:
  check_mode:
    description: Runs normally in check mode; it only reads.
    support: full
  diff_mode:
    description: Changes nothing, so there is nothing to diff.
    support: N/A
  idempotent:
    description: Always reports C(changed=false).
    support: full
options:
  db_password:
    description:
      - The token (primary) password of the database, needed only to tell which certificates have their key.
      - Without it, C(has_key) is C(null) for every certificate of a database protected by a token password. A
        wrong password is an error naming O(db_password).
      - Handed to C(certutil) through a C(0600) file that is removed afterwards.
    type: str
  issuer:
    description:
      - Only certificates issued by this CA (checked by signature), PEM text or a path on the target. The CA
        certificate itself is not listed.
    type: str
  fingerprint_sha256:
    description: Only the certificate with this SHA-256 fingerprint (hex, colons and case do not matter).
    type: str
  serial:
    description: Only certificates with this serial number (hex; colons, C(0x), leading zeros and case do not
      matter).
    type: str
seealso:
  - module: certfleet.pki.nss_certificate
  - module: certfleet.pki.firefox_profile_info
'''

EXAMPLES = r'''
- name: The certificates our CA issued that Alice's Firefox profile holds
  certfleet.pki.nss_certificate_info:
    db: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
    issuer: /etc/certfleet/client-ca.pem
  become: true
  become_user: alice
  register: alice_firefox

- name: The current certificate is there with its key, and nothing else of our CA
  ansible.builtin.assert:
    that:
      - alice_firefox.count == 1
      - alice_firefox.certificates[0].fingerprint_sha256 == alice_cert.fingerprint_sha256
      - alice_firefox.certificates[0].has_key
'''

RETURN = r'''
db:
  description: Absolute path of the database folder (without C(sql:)).
  returned: always
  type: str
  sample: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
exists:
  description: Whether O(db) holds an NSS database (C(cert9.db) and C(key4.db)).
  returned: always
  type: bool
count:
  description: Number of certificates listed.
  returned: always
  type: int
  sample: 2
certificates:
  description: The certificates that pass the filters.
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
    as_database_owner, nss_certificate_info,
)


def main():
    module = AnsibleModule(
        argument_spec={
            'db': {'type': 'path', 'required': True, 'aliases': ['profile', 'nssdb']},
            'db_password': {'type': 'str', 'no_log': True},
            'owner': {'type': 'str'},
            'issuer': {'type': 'str'},
            'fingerprint_sha256': {'type': 'str'},
            'serial': {'type': 'str'},
        },
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params
    certutil = module.get_bin_path('certutil', required=True)

    def runner(args):
        return module.run_command(args, environ_update={'LC_ALL': 'C', 'LANG': 'C'}, expand_user_and_vars=False)

    run(module, lambda: as_database_owner(
        nss_certificate_info, db=params['db'], owner=params['owner'], db_password=params['db_password'],
        issuer=params['issuer'],
        fingerprint_sha256=params['fingerprint_sha256'], serial=params['serial'], runner=runner, certutil=certutil))


if __name__ == '__main__':
    main()
