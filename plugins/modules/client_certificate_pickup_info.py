#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_pickup_info
short_description: List the pickups (retrieval URL and PIN credentials) of the managed CA
version_added: 0.2.0
description:
  - Lists the pickups M(certfleet.pki.client_certificate_pickup) created, with their state and counters, and the
    number of pickups in each state.
  - A pickup is V(open) (waiting for its first download), V(picked_up) (downloaded at least once), V(expired) (its
    window passed, also before anything closed it), V(locked) (too many wrong PINs) or V(closed) (withdrawn, or
    replaced by a pickup of a newer certificate).
  - Never changes anything, and never returns a URL secret, a PIN or their hashes. It does not need the CA key, so
    O(ca_passphrase) is accepted (for C(module_defaults)) but not used.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
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
  identity:
    description: Only the pickups of this identity.
    type: str
  states:
    description: Only pickups in these states; RV(counts) still counts every state.
    type: list
    elements: str
    choices: [open, picked_up, expired, locked, closed]
seealso:
  - module: certfleet.pki.client_certificate_pickup
'''

EXAMPLES = r'''
- name: Pickups still waiting for their person
  certfleet.pki.client_certificate_pickup_info:
    ca_path: /var/lib/certfleet/ca
    states: [open]
  delegate_to: ca.example.org
  register: waiting

- name: Alice's pickups, whatever their state
  certfleet.pki.client_certificate_pickup_info:
    ca_path: /var/lib/certfleet/ca
    identity: alice
  delegate_to: ca.example.org
  register: alice_pickups
'''

RETURN = r'''
counts:
  description: Pickups per state (of the identity, with O(identity)), and C(total).
  returned: always
  type: dict
  sample: {open: 2, picked_up: 5, expired: 1, locked: 0, closed: 1, total: 9}
pickups:
  description: The pickups, oldest first. Never holds a secret or a hash.
  returned: always
  type: list
  elements: dict
  contains:
    pickup_id:
      description: The pickup's public handle.
      type: str
    identity:
      description: The identity.
      type: str
    serial:
      description: The certificate the pickup hands out.
      type: str
    subject:
      description: The certificate's subject DN.
      type: str
    state:
      description: V(open), V(picked_up), V(expired), V(locked) or V(closed).
      type: str
    open:
      description: Whether the pickup still serves downloads.
      type: bool
    format:
      description: V(pkcs12-modern), V(pkcs12-legacy) or V(mobileconfig).
      type: str
    created_at:
      description: ISO 8601 UTC.
      type: str
    expires_at:
      description: The issuance-based end of the window, ISO 8601 UTC.
      type: str
    lock_after_first_pickup_days:
      description: Days after the first download when the pickup closes, or C(null).
      type: int
    window_ends_at:
      description: When the pickup stops (stopped) serving downloads, as far as known.
      type: str
    max_downloads:
      description: Downloads allowed.
      type: int
    downloads:
      description: Downloads so far.
      type: int
    first_pickup_at:
      description: The first download, ISO 8601 UTC, or C(null).
      type: str
    max_attempts:
      description: Wrong PINs that lock the pickup.
      type: int
    failed_attempts:
      description: Wrong PINs so far.
      type: int
    locked_at:
      description: When too many wrong PINs locked it, or C(null).
      type: str
    closed_at:
      description: When it closed, or C(null).
      type: str
    close_reason:
      description: V(downloaded), V(expired), V(locked), V(withdrawn), V(superseded) or V(pin_lost); C(null) while
        open.
      type: str
    renewal_of:
      description: The serial a renewal pickup's certificate renews, or C(null).
      type: str
    confirmed_at:
      description: When the replacement was confirmed (and the old serial revoked), or C(null).
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.pickup import PICKUP_STATES
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            identity={'type': 'str'},
            states={'type': 'list', 'elements': 'str', 'choices': list(PICKUP_STATES)},
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], unlock=False, store_url=params['ca_store']) as ca:
            return ca.pickups(identity=params['identity'], states=params['states'])

    run(module, operation)


if __name__ == '__main__':
    main()
