# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options every CA-facing module shares; set them once with module_defaults for group/certfleet.pki.ca.
    DOCUMENTATION = r'''
options:
  ca_path:
    description:
      - The CA directory on the CA host (where the module runs; use C(delegate_to) to run it on a dedicated CA
        host). It holds C(ca.pem), the encrypted C(ca.key), the embedded store C(state.db) and the published CRLs.
      - Set it once for all CA modules with C(module_defaults) and the action group C(group/certfleet.pki.ca).
      - Required unless O(ca_store) is given; giving both is an error.
    type: path
  ca_store:
    description:
      - A shared store that holds the whole CA (certificate, encrypted key, chain, record, published CRL) instead of
        O(ca_path), so that any host with its connection settings and O(ca_passphrase) can run every CA module
        (AWX execution nodes with no shared disk).
      - A PostgreSQL URL in a libpq form, C(postgresql://USER:PASSWORD@HOST:PORT/DBNAME) or
        C(postgresql:///DBNAME?host=SOCKET_DIR); the standard C(PG*) environment variables (C(PGPASSWORD),
        C(PGHOST)...) of the process the module runs in fill what the URL leaves out, and so does C(~/.pgpass).
      - Give the password in the URL (percent-encoded), in C(~/.pgpass) or in the environment of C(ansible-playbook)
        itself, not in a task's C(environment), which Ansible prints with the module's command line at C(-vvv).
      - Never shown in results or messages with its password; the store is named
        C(postgresql://USER@HOST:PORT/DBNAME).
      - Absent means the embedded SQLite store in O(ca_path). Move an embedded CA with M(certfleet.pki.ca_migrate).
    type: str
  ca_passphrase:
    description:
      - The passphrase that encrypts the CA key at rest.
      - Needed by every module that signs, revokes or reads held keys.
    type: str
requirements:
  - cryptography >= 42.0 on the CA host
  - psycopg >= 3.1 on the CA host, only with a PostgreSQL O(ca_store)
notes:
  - Many Ansible forks may run these modules against one CA directory at the same time. The store serialises
    writes; no record is lost or duplicated and one identity never has two current certificates.
'''

    ATTRIBUTES = r'''
attributes:
  action_group:
    description: Use C(group/certfleet.pki.ca) in C(module_defaults) to set O(ca_path) or O(ca_store), and
      O(ca_passphrase), once.
    support: full
    membership:
      - certfleet.pki.ca
'''
