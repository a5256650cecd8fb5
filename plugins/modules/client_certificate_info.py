#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_info
short_description: List the client certificates the managed CA has issued
version_added: 0.1.0
description:
  - Lists certificates from the CA's store, filtered by O(identity), O(serial), O(status), O(expiring_within) and
    O(current_only). Filters combine; without any, every certificate is listed.
  - Also returns totals over the whole store (not with O(identity)) and a summary of the CA certificate.
  - Never writes anything and never returns a private key. It does not need the CA key, so O(ca_passphrase) is
    accepted (for C(module_defaults)) but not used.
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
    description: Only certificates of this identity.
    type: str
  serial:
    description: Only the certificate with this serial number (hexadecimal; colons, C(0x) and lower case are
      accepted). An unknown serial gives an empty list, not an error.
    type: str
  status:
    description:
      - Only certificates in this state. V(valid) not revoked and not expired; V(revoked); V(expired) past
        C(not_after) and not revoked; V(pending_revocation) valid certificates replaced by a renewal and waiting
        for M(certfleet.pki.client_certificate_revoke).
    type: str
    choices: [valid, revoked, expired, pending_revocation]
  expiring_within:
    description:
      - Only valid certificates that expire within this many days from now. C(0) selects none that are still
        valid; use O(status=expired) for expired ones.
    type: int
  current_only:
    description: Only the current certificate of each identity (not superseded, not revoked).
    type: bool
    default: false
  include_certificate:
    description: Add each certificate's PEM as C(certificate), and the CA certificate's PEM as C(ca.certificate).
    type: bool
    default: false
  include_deployments:
    description:
      - Add RV(deployments), the records of which host carries which serial, as the C(certfleet.pki.deploy) role
        and M(certfleet.pki.client_certificate_deployment) keep them.
      - Without filters, every record; with O(identity) alone, that identity's records; with any other filter,
        the records of the selected certificates.
      - Without O(identity), add RV(host_audits) too, what the last drift audit found on each host.
      - Ignored with O(requests).
    type: bool
    default: false
  requests:
    description:
      - Plan mode. A list of identities as M(certfleet.pki.client_certificate) would get them (dicts with
        C(identity), C(subject), C(email), C(sans), C(profile), C(key_type), C(renew_before), C(force); other keys such
        as C(host) or C(stores) are ignored). Returns which identities are due for issue or renewal and which still
        have a superseded certificate waiting (an earlier run that did not finish), in one read of the store.
      - The fleet playbooks ask this once per run instead of running a task per identity.
      - A request that would fail (missing fields, a policy violation) is listed in RV(invalid) with the field and
        the reason, without stopping the others. An identity given twice with different details is invalid.
      - With O(requests), the filters above are ignored and RV(certificates) is empty.
    type: list
    elements: dict
  renew_before:
    description: Renewal window for O(requests) that do not set their own (C(30d), C(12h), C(2w), C(20%)).
    type: str
    default: 30d
seealso:
  - module: certfleet.pki.client_certificate
  - module: certfleet.pki.client_certificate_revoke
'''

EXAMPLES = r'''
- name: Certificates that expire within 30 days are listed
  certfleet.pki.client_certificate_info:
    ca_path: /var/lib/certfleet/ca
    expiring_within: 30
    current_only: true
  delegate_to: ca.example.org
  register: expiring

- name: Their owners are told
  ansible.builtin.debug:
    msg: "{{ item.identity }} ({{ item.serial }}) expires in {{ item.days_left }} days"
  loop: "{{ expiring.certificates }}"

- name: Alice's current certificate is fetched, PEM included
  certfleet.pki.client_certificate_info:
    ca_path: /var/lib/certfleet/ca
    identity: alice
    current_only: true
    include_certificate: true
  register: alice

- name: The fleet's identities that need work tonight are known, in one query
  certfleet.pki.client_certificate_info:
    ca_path: /var/lib/certfleet/ca
    requests: "{{ groups['all'] | map('extract', hostvars, 'certfleet_identities') | select('defined') | flatten }}"
    renew_before: 30d
  run_once: true
  register: plan

- name: Which hosts carry which certificate is known
  certfleet.pki.client_certificate_info:
    ca_path: /var/lib/certfleet/ca
    include_deployments: true
  register: inventory

- name: Nothing is left waiting for revocation after the roll-out
  certfleet.pki.client_certificate_info:
    ca_path: /var/lib/certfleet/ca
    status: pending_revocation
  register: pending
  failed_when: pending.count > 0
'''

RETURN = r'''
certificates:
  description: The selected certificates, ordered by identity and then by issue time. No private key.
  returned: always
  type: list
  elements: dict
  contains:
    serial:
      description: Serial number, upper-case hex without colons.
      type: str
      sample: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
    identity:
      description: The identity the certificate was issued to.
      type: str
      sample: alice
    subject:
      description: Subject, RFC 4514.
      type: str
      sample: CN=Alice Example,O=Example Org
    subject_fields:
      description: Subject attributes by short name, as accepted by the C(subject) option of
        M(certfleet.pki.client_certificate) (repeated attributes as lists).
      type: dict
      sample: {CN: Alice Example, O: Example Org}
    sans:
      description: subjectAltName entries (C(email:), C(DNS:), C(URI:), C(UPN:), C(IP:)).
      type: list
      elements: str
      sample: ["email:alice@example.org"]
    profile:
      description: Certificate profile (C(client), C(client_email), C(smartcard), C(client_email_smartcard)).
      type: str
      sample: client
    key_type:
      description: Key type (C(rsa2048), C(rsa3072), C(rsa4096), C(ec-p256), C(ec-p384)).
      type: str
      sample: rsa2048
    key_status:
      description: C(held) (the CA host holds the key for export), C(purged) (retention ended or revoked) or
        C(endpoint) (issued from a CSR).
      type: str
      sample: held
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
      sample: "2026-11-21T08:00:00Z"
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
      sample: "2027-11-21T08:05:00Z"
    fingerprint_sha256:
      description: SHA-256 fingerprint, upper-case hex without colons.
      type: str
    fingerprint_sha1:
      description: SHA-1 fingerprint (the Windows certificate thumbprint), upper-case hex without colons.
      type: str
    status:
      description: V(valid), V(revoked) or V(expired) (computed from the clock).
      type: str
      sample: valid
    current:
      description: Whether this is the identity's current certificate.
      type: bool
    pending_revocation:
      description: Whether a renewal replaced it and it waits for revocation.
      type: bool
    revoked_at:
      description: When it was revoked, ISO 8601 UTC; C(null) unless revoked.
      type: str
    revocation_reason:
      description: Why it was revoked; C(null) unless revoked.
      type: str
    renews:
      description: Serial of the certificate this one replaced, or C(null).
      type: str
    renewed_by:
      description: Serial of the certificate that replaced this one, or C(null).
      type: str
    issued_at:
      description: When the CA issued it, ISO 8601 UTC.
      type: str
    key_retain_until:
      description: When a held key is (or was to be) purged, ISO 8601 UTC; C(null) for CSR-issued certificates.
      type: str
    days_left:
      description: Whole days until C(not_after); C(0) once expired.
      type: int
      sample: 364
    certificate:
      description: The certificate, PEM.
      type: str
      returned: when O(include_certificate=true)
deployments:
  description: Which host carries which certificate, one entry per identity and host.
  returned: when O(include_deployments=true) and O(requests) is not given
  type: list
  elements: dict
  contains:
    identity:
      description: The identity.
      type: str
    host:
      description: The inventory name of the host.
      type: str
    serial:
      description: The serial recorded as installed there.
      type: str
    stores:
      description: The stores that hold it on that host.
      type: list
      elements: str
    deployed_at:
      description: When the record was made, ISO 8601 UTC.
      type: str
  sample:
    - {identity: alice, host: laptop-17, serial: 5F1B0C2D9E8A7B6C, stores: [chromium, firefox],
       deployed_at: "2026-11-21T08:06:00Z"}
host_audits:
  description:
    - What the last drift audit (C(certfleet.pki.audit)) found on each audited host, as
      M(certfleet.pki.client_certificate_deployment) (O(certfleet.pki.client_certificate_deployment#module:host_audits))
      keeps it.
  returned: when O(include_deployments=true) and neither O(identity) nor O(requests) is given
  type: list
  elements: dict
  contains:
    host:
      description: The inventory name of the host.
      type: str
    audited_at:
      description: When the host was last audited, ISO 8601 UTC.
      type: str
    summary:
      description: The counts (C(stores), C(missing), C(restored), C(still_missing), C(removed_revoked),
        C(removed_superseded), C(foreign), C(unclaimed), C(problems)) and C(drift).
      type: dict
    findings:
      description: What was found (C(kind), C(identity), C(store), C(user), C(path), C(serial), C(outcome),
        C(reason), C(message)).
      type: list
      elements: dict
  sample:
    - {host: pc1, audited_at: "2026-11-28T02:00:00Z", summary: {missing: 1, restored: 1, drift: true},
       findings: [{kind: missing, identity: alice, store: firefox, user: alice, outcome: restored}]}
superseded:
  description:
    - The certificates of O(identity) other than its current one, oldest first, whatever the other filters select
      (renewed ones pending revocation, revoked and expired ones). The CA decides this once from its record; the
      C(certfleet.pki.deploy) role removes exactly these from the stores, and C(certfleet.pki.revoke) takes the
      revoked ones among them.
    - Every certificate of the identity when it has no current one (its current certificate was revoked).
  returned: when O(identity) is given and O(requests) is not
  type: list
  elements: dict
  contains:
    serial:
      description: Serial number, upper-case hex.
      type: str
    fingerprint_sha1:
      description: SHA-1 fingerprint (the Windows certificate thumbprint), upper-case hex without colons.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint, upper-case hex without colons.
      type: str
    status:
      description: V(valid), V(revoked) or V(expired) (computed from the clock).
      type: str
  sample:
    - {serial: 4A0E7F12C3B5D6E8, fingerprint_sha1: 0F3C9A1B2D4E6F8091A2B3C4D5E6F708192A3B4C,
       fingerprint_sha256: 9C1D0E2F3A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5, status: valid}
count:
  description: Number of certificates in RV(certificates).
  returned: always
  type: int
  sample: 1
totals:
  description: Counts over the whole store, regardless of the other filters.
  returned: without O(requests) and without O(identity) (a query by identity stays flat as the store grows)
  type: dict
  contains:
    total:
      description: All certificates ever issued.
      type: int
    valid:
      description: Not revoked and not expired.
      type: int
    revoked:
      description: Revoked.
      type: int
    expired:
      description: Expired and not revoked.
      type: int
    pending_revocation:
      description: Valid certificates waiting for revocation after a renewal.
      type: int
    identities:
      description: Distinct identities.
      type: int
  sample: {total: 12, valid: 9, revoked: 2, expired: 1, pending_revocation: 1, identities: 8}
due:
  description: With O(requests), the identities to issue or renew, with why.
  returned: when O(requests) is given
  type: list
  elements: dict
  contains:
    identity:
      description: The identity.
      type: str
    action:
      description: C(issue) or C(renew).
      type: str
    reasons:
      description: Why (expiry window, changed subject or e-mail, no certificate, force).
      type: list
      elements: str
    reason_codes:
      description: The code of each reason, as M(certfleet.pki.client_certificate) returns them (C(renew_window),
        C(force), C(subject_changed), ...); playbooks branch on these, not on the texts.
      type: list
      elements: str
    reason_code:
      description: The leading reason's code.
      type: str
    serial:
      description: The current certificate, if any.
      type: str
    not_after:
      description: Its expiry, ISO 8601 UTC.
      type: str
pending_revocation:
  description: With O(requests), identities that still have valid superseded certificates to remove and revoke.
  returned: when O(requests) is given
  type: list
  elements: dict
  contains:
    identity:
      description: The identity.
      type: str
    serials:
      description: The superseded certificates still valid.
      type: list
      elements: str
    current_serial:
      description: The certificate that replaced them.
      type: str
records:
  description:
    - With O(requests), for each requested identity that has a current certificate, what a store on a host should
      hold of it, in the form M(certfleet.pki.endpoint_reconcile) takes for
      O(certfleet.pki.endpoint_reconcile#module:identities) (the filter C(certfleet.pki.fleet_reconcile) builds
      a host's calls from it).
    - Keyed by identity. Certificates only, never keys.
  returned: when O(requests) is given
  type: dict
  sample:
    alice:
      serial: 5A1F0C
      fingerprint_sha256: 3E7A...
      not_after: '2027-11-30T12:00:00Z'
      key_status: held
      superseded_serials: [1B2C3D]
      superseded_fingerprints_sha256: [9F0E...]
      revoked_serials: [1B2C3D]
  contains:
    serial:
      description: The current certificate's serial.
      type: str
    fingerprint_sha256:
      description: Its SHA-256 fingerprint.
      type: str
    not_after:
      description: Its expiry, ISO 8601 UTC.
      type: str
    key_status:
      description: Whether the CA still holds its key (C(held)), so that it can be exported again to a store that
        lost it; C(purged) or C(endpoint) (the key never left its host) otherwise.
      type: str
    superseded_serials:
      description: The identity's other certificates (they leave the stores once the current one is there).
      type: list
      elements: str
    superseded_fingerprints_sha256:
      description: Their SHA-256 fingerprints.
      type: list
      elements: str
    revoked_serials:
      description: Those of them that are revoked (removed from a store wherever found).
      type: list
      elements: str
ca_certificate:
  description: With O(requests), the CA's certificate (PEM), to tell its certificates from others in the stores.
  returned: when O(requests) is given
  type: str
ca_common_name:
  description: With O(requests), the common name of the CA's certificate (the ISSUER filter of Chromium's
    AutoSelectCertificateForUrls policy).
  returned: when O(requests) is given
  type: str
  sample: Certfleet Example CA
up_to_date:
  description: With O(requests), identities that need nothing.
  returned: when O(requests) is given
  type: list
  elements: str
invalid:
  description:
    - With O(requests), requests that cannot be served, with C(identity), C(host), C(field), C(msg) and
      C(error_code) (C(invalid_input), C(policy), or C(defined_twice) for an identity defined
      differently in two places).
  returned: when O(requests) is given
  type: list
  elements: dict
counts:
  description: With O(requests), how many identities are in each list.
  returned: when O(requests) is given
  type: dict
  sample: {requested: 1000, identities: 1000, due: 100, pending_revocation: 0, up_to_date: 900, invalid: 0}
ca:
  description: The CA certificate's details (no key).
  returned: always
  type: dict
  contains:
    subject:
      description: Subject, RFC 4514.
      type: str
    serial:
      description: Serial number, upper-case hex.
      type: str
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint, upper-case hex.
      type: str
    fingerprint_sha1:
      description: SHA-1 fingerprint (Windows thumbprint).
      type: str
    key_type:
      description: Key type of the CA.
      type: str
    self_signed:
      description: Whether the CA is a self-signed root.
      type: bool
    certificate:
      description: The CA certificate, PEM.
      type: str
      returned: when O(include_certificate=true) and O(requests) is not given
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import RENEW_BEFORE
from ansible_collections.certfleet.pki.plugins.module_utils.ca.queries import STATUSES
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            identity={'type': 'str'},
            serial={'type': 'str'},
            status={'type': 'str', 'choices': list(STATUSES)},
            expiring_within={'type': 'int'},
            current_only={'type': 'bool', 'default': False},
            include_certificate={'type': 'bool', 'default': False},
            include_deployments={'type': 'bool', 'default': False},
            requests={'type': 'list', 'elements': 'dict'},
            renew_before={'type': 'str', 'default': RENEW_BEFORE},
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], unlock=False, store_url=params['ca_store']) as ca:
            if params['requests'] is not None:
                result = ca.plan(params['requests'], params['renew_before'])
                result.update({'certificates': [], 'count': 0, 'ca': ca.authority.summary()})
                return result
            return ca.query(identity=params['identity'], serial=params['serial'], status=params['status'],
                            expiring_within=params['expiring_within'], current_only=params['current_only'],
                            include_certificate=params['include_certificate'],
                            include_deployments=params['include_deployments'])

    run(module, operation)


if __name__ == '__main__':
    main()
