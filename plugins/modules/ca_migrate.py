#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ca_migrate
short_description: Move an embedded CA into a shared PostgreSQL store
version_added: 0.1.0
description:
  - Moves the CA in O(ca_path) (its files and the embedded SQLite store) into the shared store O(ca_store), with
    its whole history - every certificate and serial, renewal links, revocations, held keys, deployments, bulk
    request lines, the CRL number and published CRL, the settings and the audit log - so that every CA module can
    then run with O(ca_store) from any node.
  - The CA key moves as it is, encrypted with O(ca_passphrase); the passphrase only proves you hold the CA.
  - The copy is built aside and becomes the store's state in one step; while it runs no other process can write to
    the embedded CA. Afterwards the embedded CA is marked as moved and the CA modules refuse it (a CA must not
    live on in two places); its files stay in O(ca_path) as a backup until you remove them.
  - A store that holds any CA state already is never overwritten. Running the module again reports
    C(changed=false); if an earlier run was cut after the copy, it only marks the embedded CA.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reports what would be copied; writes nowhere.
    support: full
  diff_mode:
    description: No diff.
    support: none
  idempotent:
    description: A second run reports C(changed=false).
    support: full
options:
  ca_path:
    description: The embedded CA to move (its directory on the host where the module runs).
    type: path
    required: true
  ca_store:
    description:
      - The shared store to move it into, an empty PostgreSQL database, as a libpq URL
        (C(postgresql://USER:PASSWORD@HOST:PORT/DBNAME) or C(postgresql:///DBNAME?host=SOCKET_DIR)); the C(PG*)
        environment variables fill what the URL leaves out.
      - Never shown with its password.
    type: str
    required: true
  ca_passphrase:
    description: The passphrase of the CA key, to prove the CA is yours before it moves.
    type: str
requirements:
  - cryptography >= 42.0 and psycopg >= 3.1 on the host that runs it
notes:
  - Afterwards set O(ca_store) instead of O(ca_path) for the CA modules, for example in C(module_defaults) of
    C(group/certfleet.pki.ca), and C(certfleet_ca_store) for the fleet playbooks.
seealso:
  - module: certfleet.pki.ca
'''

EXAMPLES = r'''
- name: Move the embedded CA into PostgreSQL
  certfleet.pki.ca_migrate:
    ca_path: /var/lib/certfleet/ca
    # ca_store is no_log: the password may be in the URL (percent-encoded). Not in the task's environment, which
    # Ansible prints with the module's command line at -vvv.
    ca_store: "postgresql://certfleet:{{ db_password }}@db.example.org/certfleet"
    ca_passphrase: "{{ vault_ca_passphrase }}"
  vars:
    db_password: "{{ vault_certfleet_db_password | urlencode | replace('/', '%2F') }}"
'''

RETURN = r'''
action:
  description: V(migrated) (copied now), V(completed) (an earlier run had copied it; the embedded CA is now marked
    as moved) or V(none).
  returned: always
  type: str
counts:
  description: Rows copied per table (C(certificates), C(audit), C(deployments)...), when the CA was copied.
  returned: when action is migrated
  type: dict
  sample: {certificates: 1200, held_keys: 300, audit: 5100, deployments: 900, request_rows: 0, meta: 6}
ca:
  description: The CA that moved (subject, serial, fingerprints, validity).
  returned: always
  type: dict
ca_path:
  description: Absolute path of the embedded CA.
  returned: always
  type: str
ca_store:
  description: The store, without its password.
  returned: always
  type: str
  sample: postgresql://certfleet@db.example.org:5432/certfleet
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.migrate import migrate_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import require_cryptography, run


def main():
    module = AnsibleModule(
        argument_spec={
            'ca_path': {'type': 'path', 'required': True},
            'ca_store': {'type': 'str', 'required': True, 'no_log': True},
            'ca_passphrase': {'type': 'str', 'no_log': True},
        },
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params
    run(module, lambda: migrate_ca(ca_path=params['ca_path'], store_url=params['ca_store'],
                                   ca_passphrase=params['ca_passphrase'], check_mode=module.check_mode))


if __name__ == '__main__':
    main()
