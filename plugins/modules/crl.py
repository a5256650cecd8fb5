#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: crl
short_description: Publish the managed CA's certificate revocation list
version_added: 0.1.0
description:
  - Keeps the CA's CRL current in O(ca_path) (C(crl.pem) and C(crl.der)) and, with O(dest), in one more file, for
    example under a web server's document root at the CA's C(crl_url).
  - The CRL is signed again only when needed, that is when no CRL has been published yet, when the revocations
    in the store changed since the last CRL, when its next update is near (less than half of the interval between
    its this update and next update is left), or when O(next_update_days) changed. Otherwise the published CRL is
    kept and C(changed=false), so the module can run from a frequent schedule (more often than half of
    O(next_update_days)).
  - Every CRL carries a CRL Number, one higher than the previous one and never reused, and the CA's Authority Key
    Identifier. Entries carry the revocation time and, except for C(unspecified), the reason code.
  - Before publishing, the published CRL is read back and checked against the store. When it lists revoked
    serials that the store does not know as revoked (typically because the store was restored from an old
    backup), the module refuses to publish rather than silently un-revoke them.
  - O(dest) is written atomically with mode C(0644) (a CRL is public) and rewritten when its content or mode
    differ.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reports whether the CRL would be signed again and why, and whether O(dest) would be written,
      without signing or writing anything.
    support: full
  diff_mode:
    description: No diff is produced; RV(reasons) says why the CRL was regenerated.
    support: none
  idempotent:
    description: A second run with the same parameters reports C(changed=false) until less than half of
      O(next_update_days) is left; then it signs and publishes a fresh CRL, as it should. Time alone makes it change.
    support: partial
options:
  dest:
    description:
      - An extra copy of the current CRL, in O(format). Its folder must exist.
      - The CRL in O(ca_path) is kept in both formats whether this is given or not. With O(ca_store) the CRL is kept
        in the store and O(dest) is the file to serve.
    type: path
  format:
    description: Encoding of O(dest). V(pem) (C(-----BEGIN X509 CRL-----)) or V(der) (binary, what HTTP CRL
      distribution points usually serve).
    type: str
    choices: [pem, der]
    default: pem
  next_update_days:
    description:
      - Days from signing until the CRL's next update. Relying parties treat the CRL as stale afterwards, so the
        module must run again well before that; it signs a new CRL once less than half of this interval is left.
      - Changing it signs a new CRL.
    type: int
    default: 7
notes:
  - Run it after M(certfleet.pki.client_certificate_revoke), and on a schedule, for example daily.
seealso:
  - module: certfleet.pki.ca
  - module: certfleet.pki.client_certificate_revoke
'''

EXAMPLES = r'''
- name: The CRL at the CA's distribution point is current
  certfleet.pki.crl:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    dest: /var/www/pki/client-ca.crl
    format: der
    next_update_days: 7
  delegate_to: ca.example.org

- name: Revocations and CRL, with the CA settings shared through the action group
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: /var/lib/certfleet/ca
      ca_passphrase: "{{ vault_ca_passphrase }}"
  block:
    - name: Superseded certificates are revoked
      certfleet.pki.client_certificate_revoke:
        identity: "{{ item }}"
        which: superseded
        reason: superseded
      loop: "{{ vpn_users | map(attribute='uid') }}"

    - name: The VPN gateway's CRL lists them
      certfleet.pki.crl:
        dest: /etc/openvpn/server/crl.pem
        next_update_days: 3
      notify: Reload OpenVPN
'''

RETURN = r'''
regenerated:
  description: Whether a new CRL was signed (in check mode, would be signed).
  returned: always
  type: bool
  sample: true
reasons:
  description: Why the CRL was signed again; empty when it was kept.
  returned: always
  type: list
  elements: str
  sample: ["revocations changed"]
crl_number:
  description: The CRL Number of the current CRL (in check mode, of the one that would be signed).
  returned: always
  type: int
  sample: 12
revoked_count:
  description: Number of entries (revoked certificates) in the CRL.
  returned: always
  type: int
  sample: 3
this_update:
  description: The CRL's this update (thisUpdate), ISO 8601 UTC. C(null) in check mode when it would be signed.
  returned: always
  type: str
  sample: "2026-11-21T07:55:00Z"
next_update:
  description: The CRL's next update (nextUpdate), ISO 8601 UTC. C(null) in check mode when it would be signed.
  returned: always
  type: str
  sample: "2026-11-28T08:00:00Z"
dest:
  description: The extra copy, as given (C(null) without O(dest)).
  returned: always
  type: str
  sample: /var/www/pki/client-ca.crl
format:
  description: Encoding of O(dest).
  returned: always
  type: str
  sample: der
crl_pem_path:
  description: The PEM CRL in the CA directory; V(null) with O(ca_store).
  returned: always
  type: str
  sample: /var/lib/certfleet/ca/crl.pem
crl_der_path:
  description: The DER CRL in the CA directory; V(null) with O(ca_store).
  returned: always
  type: str
  sample: /var/lib/certfleet/ca/crl.der
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            dest={'type': 'path'},
            format={'type': 'str', 'default': 'pem', 'choices': ['pem', 'der']},
            next_update_days={'type': 'int', 'default': 7},
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], store_url=params['ca_store']) as ca:
            return ca.publish_crl(dest=params['dest'], format=params['format'],
                                  next_update_days=params['next_update_days'], check_mode=module.check_mode)

    run(module, operation)


if __name__ == '__main__':
    main()
