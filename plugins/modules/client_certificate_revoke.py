#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_revoke
short_description: Revoke client certificates issued by the managed CA
version_added: 0.1.0
description:
  - Revokes one certificate by O(serial), or the certificates of an O(identity) selected by O(which).
  - The usual use is O(which=superseded) after a renewal by M(certfleet.pki.client_certificate), once the new
    certificate is deployed everywhere; the old one stays valid (I(pending revocation)) until then.
  - Revoking the current certificate (O(which=current) or O(which=all)) leaves the identity without one; the next
    run of M(certfleet.pki.client_certificate) issues a new certificate.
  - A revoked certificate's held private key, if any, is deleted at once; it can no longer be exported.
  - Revocation is recorded in the CA's store only. Relying parties learn about it from the next CRL; publish it
    with M(certfleet.pki.crl) afterwards.
  - Certificates that are already revoked are left alone and do not count as a change. Their original revocation
    time and reason are kept.
  - O(serials) and O(identities) revoke many certificates in one call and one store transaction, with the same rule
    as O(serial) and O(identity) for each item. Every item is checked before anything is revoked; a bad item anywhere
    (a malformed or unknown serial, an unknown identity) fails the call, naming it (for example C(serials[2])), and
    nothing is revoked. A certificate named twice is revoked once. Empty lists revoke nothing (C(changed=false)).
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reports which certificates would be revoked without changing the store.
    support: full
  diff_mode:
    description: No diff is produced; RV(revoked) and RV(certificates) list what was (or would be) revoked.
    support: none
  idempotent:
    description: Already revoked certificates are skipped, so a second run with the same parameters reports
      C(changed=false).
    support: full
options:
  serial:
    description:
      - Serial number of the certificate to revoke, hexadecimal; colons, a C(0x) prefix, leading zeros and lower
        case are accepted (C(5f:1b:0c), C(0x5F1B0C)).
      - Mutually exclusive with O(identity), O(serials) and O(identities); one of O(serial), O(identity),
        O(serials) or O(identities) is required.
    type: str
  identity:
    description:
      - Revoke certificates of this identity, chosen by O(which).
      - Mutually exclusive with O(serial), O(serials) and O(identities).
    type: str
  serials:
    description:
      - Revoke each of these certificates, by serial number (spelled as for O(serial)), in one transaction.
      - Can be combined with O(identities); mutually exclusive with O(serial) and O(identity).
    type: list
    elements: str
    version_added: 0.2.0
  identities:
    description:
      - Revoke the certificates of each of these identities chosen by O(which), in one transaction.
      - Can be combined with O(serials); mutually exclusive with O(serial) and O(identity).
    type: list
    elements: str
    version_added: 0.2.0
  which:
    description:
      - Which certificates of O(identity) (or of each of O(identities)) to revoke. Only valid with O(identity) or
        O(identities).
      - V(superseded) the certificates replaced by a renewal and pending revocation; V(current) the current
        certificate; V(all) every valid certificate of the identity, current and superseded.
      - When omitted with O(identity) or O(identities), V(superseded) is used.
    type: str
    choices: [superseded, current, all]
  reason:
    description:
      - The revocation reason written into the CRL entry (RFC 5280 CRLReason). V(unspecified) is written as an
        entry without a reason code, as RFC 5280 recommends.
      - Use V(key_compromise) when the private key may be known to others.
    type: str
    choices:
      - unspecified
      - key_compromise
      - ca_compromise
      - affiliation_changed
      - superseded
      - cessation_of_operation
      - certificate_hold
      - privilege_withdrawn
      - aa_compromise
    default: unspecified
notes:
  - V(certificate_hold) is recorded like any other reason; there is no way to release a hold.
seealso:
  - module: certfleet.pki.client_certificate
  - module: certfleet.pki.client_certificate_info
  - module: certfleet.pki.crl
'''

EXAMPLES = r'''
- name: Alice's certificate that was replaced by a renewal is revoked
  certfleet.pki.client_certificate_revoke:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    identity: alice
    which: superseded
    reason: superseded
  delegate_to: ca.example.org

- name: Revoke, then publish the CRL, with the CA settings shared through the action group
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: /var/lib/certfleet/ca
      ca_passphrase: "{{ vault_ca_passphrase }}"
  block:
    - name: The lost laptop's certificate is revoked
      certfleet.pki.client_certificate_revoke:
        serial: "5F:1B:0C:2D:9E:8A:7B:6C:5D:4E:3F:2A:1B:0C:9D:8E:7F:6A:5B:4C"
        reason: key_compromise

    - name: Everything issued to people who left is revoked
      certfleet.pki.client_certificate_revoke:
        identity: "{{ item }}"
        which: all
        reason: cessation_of_operation
      loop: "{{ departed_users }}"

    - name: The superseded certificates of the batch and two lost laptops' certificates, in one call
      certfleet.pki.client_certificate_revoke:
        identities: "{{ renewed_identities }}"
        which: superseded
        serials:
          - 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
          - 0x7B7A71BC4E3E5505
        reason: superseded

    - name: The CRL lists the revocations
      certfleet.pki.crl:
        dest: /var/www/pki/client-ca.crl
'''

RETURN = r'''
revoked:
  description: Serial numbers revoked by this run (in check mode, those that would be revoked).
  returned: always
  type: list
  elements: str
  sample: ["5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C"]
already_revoked:
  description: With O(serial) or O(serials), the serials named that were already revoked (nothing was done for
    them); otherwise empty.
  returned: always
  type: list
  elements: str
  sample: []
reason:
  description: The revocation reason requested.
  returned: always
  type: str
  sample: superseded
certificates:
  description:
    - The certificates revoked by this run, as they are now (in check mode, as they would be, with C(revoked_at)
      and C(revocation_reason) still C(null)). No private key.
    - Each has the keys described for RV(certfleet.pki.client_certificate_info#module:certificates), without
      C(certificate).
  returned: always
  type: list
  elements: dict
  sample:
    - serial: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
      identity: alice
      subject: CN=Alice Example,O=Example Org
      status: revoked
      current: false
      pending_revocation: false
      revoked_at: "2026-12-01T09:30:00Z"
      revocation_reason: superseded
      not_after: "2027-11-21T08:05:00Z"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.revocation import WHICH
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import REVOCATION_REASONS


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            serial={'type': 'str'},
            identity={'type': 'str'},
            serials={'type': 'list', 'elements': 'str'},
            identities={'type': 'list', 'elements': 'str'},
            which={'type': 'str', 'choices': list(WHICH)},
            reason={'type': 'str', 'default': 'unspecified', 'choices': list(REVOCATION_REASONS)},
        ),
        mutually_exclusive=[('serial', 'identity', 'serials'), ('serial', 'identity', 'identities')],
        required_one_of=[('serial', 'identity', 'serials', 'identities')],
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], store_url=params['ca_store']) as ca:
            if params['serials'] is not None or params['identities'] is not None:
                return ca.revoke_many(serials=params['serials'], identities=params['identities'],
                                      which=params['which'], reason=params['reason'], check_mode=module.check_mode)
            return ca.revoke(serial=params['serial'], identity=params['identity'], which=params['which'],
                             reason=params['reason'], check_mode=module.check_mode)

    run(module, operation)


if __name__ == '__main__':
    main()
