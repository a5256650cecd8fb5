#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_inventory
short_description: Write the CA's full certificate history to a TSV or CSV file
version_added: 0.1.0
description:
  - Writes every certificate the CA issued, one line each, to O(dest) on the CA host, for the registration
    officer who looks up the serial to renew or revoke, or who answers "who holds a certificate".
  - "Columns: C(serial), C(identity), C(status) (V(valid), V(revoked) or V(expired)), C(current) (the identity's
    newest certificate), C(pending_revocation) (replaced by a renewal and waiting for its revocation), C(CN),
    C(email), C(subject), C(profile), C(key_type), C(not_before), C(not_after), C(issued_at), C(renews) and
    C(renewed_by) (the serials of the renewal chain), C(revoked_at), C(revocation_reason), C(key_status)
    (C(held), C(purged) or C(endpoint)) and C(fingerprint_sha256). Lines are sorted by identity, then issue time."
  - The file is rewritten (atomically, mode 0600, as it names people) only when its content changed.
  - Never reads the CA key and never writes to the CA; O(ca_passphrase) is not needed.
  - To feed a line back as a request, copy its C(identity) and C(serial) into a request file for
    M(certfleet.pki.client_certificate_requests).
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reports whether O(dest) would change, without writing it.
    support: full
  diff_mode:
    description: No diff.
    support: none
  idempotent:
    description: A second run reports C(changed=false) unless a certificate changed or expired meanwhile; the
      status column is computed from the clock, so time alone can change the file.
    support: partial
options:
  dest:
    description: The file to write on the CA host; its folder must exist.
    type: path
    required: true
  format:
    description: V(tsv) or V(csv); V(auto) decides by the extension of O(dest) (C(.csv) is CSV, anything else TSV).
    type: str
    choices: [auto, tsv, csv]
    default: auto
  identity:
    description: Only these identities.
    type: list
    elements: str
  status:
    description: Only certificates in one of these states.
    type: list
    elements: str
    choices: [valid, revoked, expired, pending_revocation]
  expiring_within:
    description: Only valid certificates that expire within this many days.
    type: int
'''

EXAMPLES = r'''
- name: The full history for the registration officer
  certfleet.pki.client_certificate_inventory:
    ca_path: /srv/certfleet/ca
    dest: /srv/certfleet/outgoing/inventory.tsv

- name: The sales department's valid certificates that expire this month, for Excel
  certfleet.pki.client_certificate_inventory:
    ca_path: /srv/certfleet/ca
    dest: /srv/certfleet/outgoing/expiring.csv
    status: [valid]
    expiring_within: 30
'''

RETURN = r'''
dest:
  description: The file written.
  returned: always
  type: str
format:
  description: V(tsv) or V(csv).
  returned: always
  type: str
count:
  description: Number of certificates in the file.
  returned: always
  type: int
  sample: 1204
columns:
  description: The header of the file.
  returned: always
  type: list
  elements: str
totals:
  description: Counts over the whole store (all, valid, revoked, expired, pending_revocation, identities).
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import INVENTORY_STATUSES, write_inventory
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            dest={'type': 'path', 'required': True},
            format={'type': 'str', 'default': 'auto', 'choices': ['auto', 'tsv', 'csv']},
            identity={'type': 'list', 'elements': 'str'},
            status={'type': 'list', 'elements': 'str', 'choices': list(INVENTORY_STATUSES)},
            expiring_within={'type': 'int'},
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], unlock=False, store_url=params['ca_store']) as ca:
            return write_inventory(ca, dest=params['dest'], format=params['format'], identities=params['identity'],
                                   statuses=params['status'], expiring_within=params['expiring_within'],
                                   check_mode=module.check_mode)

    run(module, operation)


if __name__ == '__main__':
    main()
