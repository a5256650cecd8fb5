#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_deployment
short_description: Record in the CA store which host carries which certificate
version_added: 0.1.0
description:
  - The CA store knows what it issued; this module tells it where each identity's certificate is installed, per
    host. The C(certfleet.pki.deploy) role calls it once the certificate is verified in every store of the host.
  - The fleet playbooks read these records through M(certfleet.pki.client_certificate_info)
    (O(certfleet.pki.client_certificate_info#module:requests)). A host
    whose record does not show the identity's current serial (a failed first roll-out, a new laptop for an existing
    identity, a renewal not finished there) gets work, and an old certificate is revoked only when every host that
    carries the identity shows the new serial.
  - Only the current certificate of an identity can be recorded; an older serial is listed in RV(refused).
  - With O(host_audits), it keeps what the last drift audit (the C(certfleet.pki.audit) playbook) found on each host,
    its counts and findings, which the C(certfleet.pki.report) playbook shows in its drift column and counts.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reports what would be recorded or removed without writing.
    support: full
  diff_mode:
    description: Not supported.
    support: none
  idempotent:
    description: Recording what is already recorded reports C(changed=false).
    support: full
options:
  deployments:
    description:
      - What to record (or forget, with O(state=absent)).
      - One of O(deployments) and O(host_audits) is required.
    type: list
    elements: dict
    suboptions:
      identity:
        description: The identity.
        type: str
        required: true
      host:
        description: The inventory name of the host that carries it.
        type: str
        required: true
      serial:
        description: The serial now installed there (required with O(state=present)).
        type: str
      stores:
        description: The stores that hold it on that host.
        type: list
        elements: str
  state:
    description: V(present) records, V(absent) forgets the host (for example when a laptop is retired).
    type: str
    choices: [present, absent]
    default: present
  host_audits:
    description:
      - What the last drift audit found on each host, as the C(certfleet.pki.fleet_host_audits) filter gives it;
        each host's entry replaces its previous one. Every entry is checked before anything is written.
      - The time of the audit is refreshed on every run; a host counts as changed only when its counts or
        findings differ from its last audit's.
      - Findings hold identities, stores, paths and serials, never a key or a password.
    type: list
    elements: dict
    suboptions:
      host:
        description: The inventory name of the audited host.
        type: str
        required: true
      summary:
        description:
          - Counts (whole numbers) C(stores), C(missing), C(restored), C(still_missing), C(removed_revoked),
            C(removed_superseded), C(foreign), C(unclaimed), C(problems); a missing count is 0.
        type: dict
      findings:
        description:
          - What was found, each a dict with C(kind) (V(missing), V(revoked_installed), V(stale_installed),
            V(unclaimed) or V(problem)) and any of C(identity), C(store), C(user), C(path), C(serial), C(outcome),
            C(reason), C(message). At most 1000 per host.
        type: list
        elements: dict
seealso:
  - module: certfleet.pki.client_certificate_info
'''

EXAMPLES = r'''
- name: The CA knows that alice's laptop now carries her new certificate
  certfleet.pki.client_certificate_deployment:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    deployments:
      - identity: alice
        host: "{{ inventory_hostname }}"
        serial: "{{ alice_cert.serial }}"
        stores: [firefox, chromium]
  delegate_to: ca.example.org

- name: A retired laptop no longer holds anything
  certfleet.pki.client_certificate_deployment:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    state: absent
    deployments:
      - {identity: alice, host: laptop-17}

- name: The CA keeps what the drift audit found on each host (one call for the fleet)
  certfleet.pki.client_certificate_deployment:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    host_audits: "{{ ansible_play_hosts | certfleet.pki.fleet_host_audits(hostvars) }}"
  delegate_to: ca.example.org
  run_once: true
'''

RETURN = r'''
recorded:
  description: With O(state=present), the records that were new or changed (C(identity), C(host), C(serial)).
  returned: when O(state=present)
  type: list
  elements: dict
removed:
  description: With O(state=absent), the records that were removed.
  returned: when O(state=absent)
  type: list
  elements: dict
refused:
  description: Entries whose serial is not the identity's current certificate, with C(msg).
  returned: when O(deployments) is given
  type: list
  elements: dict
audits_recorded:
  description: With O(host_audits), the hosts whose audit findings are new or changed (C(host), C(drift)).
  returned: when O(host_audits) is given
  type: list
  elements: dict
  sample: [{host: pc1, drift: true}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            deployments={'type': 'list', 'elements': 'dict', 'options': {
                'identity': {'type': 'str', 'required': True},
                'host': {'type': 'str', 'required': True},
                'serial': {'type': 'str'},
                'stores': {'type': 'list', 'elements': 'str'},
            }},
            state={'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            host_audits={'type': 'list', 'elements': 'dict', 'options': {
                'host': {'type': 'str', 'required': True},
                'summary': {'type': 'dict'},
                'findings': {'type': 'list', 'elements': 'dict'},
            }},
        ),
        required_one_of=[('deployments', 'host_audits')],
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], store_url=params['ca_store']) as ca:
            result = {'changed': False}
            if params['host_audits']:
                result.update(ca.record_host_audits(params['host_audits'], check_mode=module.check_mode))
            if params['deployments']:
                recorded = ca.record_deployments(params['deployments'], params['state'], check_mode=module.check_mode)
                result.update(recorded, changed=result['changed'] or recorded['changed'])
            return result

    run(module, operation)


if __name__ == '__main__':
    main()
