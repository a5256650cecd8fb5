#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate
short_description: Ensure an identity has a current, valid client certificate from the managed CA
version_added: 0.1.0
description:
  - Issues a client certificate to an O(identity) that has none, and renews it when it is inside O(renew_before),
    when the requested subject, SANs, profile or key type differ from the current certificate, or when O(force) is
    set. Otherwise it reports C(action=none) and changes nothing.
  - Renewal keeps the old certificate valid and marks it I(pending revocation); revoke it with
    M(certfleet.pki.client_certificate_revoke) (C(which=superseded)) once the new one is deployed everywhere.
  - Without O(csr) the CA host generates the key and holds it, encrypted, for pickup with
    M(certfleet.pki.client_certificate_export) during O(key_retention) days; it is purged afterwards. With O(csr)
    the key never leaves the endpoint.
  - The request is checked against the CA's issuance policy (see M(certfleet.pki.ca)) before anything is written.
    Subject attributes the policy fixes (C(required_subject)) are filled in when absent.
  - The result never contains a private key.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reports whether it would issue or renew, and why, without signing or writing anything.
    support: full
  diff_mode:
    description: Shows the subject, SANs, serial and expiry before and after.
    support: full
  idempotent:
    description:
      - A second run with the same parameters reports C(changed=false), unless time has brought the current
        certificate into O(renew_before) meanwhile; then it renews, as it should.
      - With O(force=true) every run issues a new certificate.
    support: partial
options:
  identity:
    description:
      - The stable name the certificate belongs to, such as a user id or C(user@host).
      - An identity has at most one current certificate.
    type: str
    required: true
  subject:
    description:
      - 'Subject attributes, for example C({CN: Alice Example, O: Example Org}).'
      - Known names are C(CN), C(O), C(OU), C(L), C(ST), C(C), C(DC), C(emailAddress), C(serialNumber), C(UID),
        C(GN), C(SN), C(title), C(street) (long forms such as C(commonName) work too). A value may be a list for
        attributes that repeat (C(OU), C(DC)).
      - Required unless O(csr) is given, in which case the CSR's subject is used when this is omitted.
    type: dict
  email:
    description:
      - The user's e-mail address, added to the subjectAltName as an C(rfc822Name).
      - A changed address renews the certificate.
    type: str
  sans:
    description:
      - subjectAltName entries as C(email:addr), C(DNS:name), C(URI:uri), C(UPN:user@realm) (Microsoft user
        principal name, for smart-card logon and EAP-TLS) or C(IP:address).
      - When omitted with O(csr), the CSR's subjectAltName is used.
    type: list
    elements: str
  profile:
    description:
      - The certificate profile. Every profile is an end-entity certificate (C(CA:false)) with keyUsage
        C(digitalSignature) (plus C(keyEncipherment) for RSA keys) and these extended key usages.
      - V(client) clientAuth; V(client_email) clientAuth and emailProtection (S/MIME); V(smartcard) clientAuth and
        Microsoft smartcardLogon; V(client_email_smartcard) all three.
    type: str
    choices: [client, client_email, smartcard, client_email_smartcard]
    default: client
  key_type:
    description:
      - The key the CA host generates when no O(csr) is given. RSA 2048 is what every importer, old and new, accepts.
    type: str
    choices: [rsa2048, rsa3072, rsa4096, ec-p256, ec-p384]
    default: rsa2048
  valid_days:
    description:
      - Lifetime of a newly issued certificate in days. Changing it does not renew the current certificate.
      - Must not exceed the policy's C(max_valid_days) nor end after the CA certificate.
    type: int
    default: 365
  renew_before:
    description:
      - When to renew before expiry, as days (C(30), C(30d)), hours (C(12h)), weeks (C(2w)) or a share of the
        certificate's lifetime (C(20%)).
    type: str
    default: 30d
  renew:
    description:
      - With V(false), a valid current certificate is kept as it is, whatever its renewal window and however the
        request differs; only an identity without a valid certificate gets one (RV(reason_code=kept)).
      - The fleet playbooks decide renewals once, in plan mode (M(certfleet.pki.client_certificate_info) with
        O(certfleet.pki.client_certificate_info#module:requests)), and the deploy role then asks with V(false), so
        a host never renews on its own.
    type: bool
    default: true
  force:
    description:
      - Renew even when the current certificate is fine.
      - This is not idempotent; use it for one-off rotations (for example after a suspected key compromise).
    type: bool
    default: false
  csr:
    description:
      - A PEM certificate signing request (text or a path on the CA host). Its signature must verify and its key
        must be RSA of 2048 bits or more, or EC P-256/P-384.
      - A CSR with a key other than the current certificate's renews the certificate.
    type: str
  key_retention:
    description:
      - Days the CA host keeps a generated key (encrypted) for export. After that it is purged and cannot be
        exported any more.
    type: int
    default: 30
seealso:
  - module: certfleet.pki.ca
  - module: certfleet.pki.client_certificate_export
  - module: certfleet.pki.client_certificate_revoke
  - module: certfleet.pki.client_certificate_info
'''

EXAMPLES = r'''
- name: Alice has a current client certificate
  certfleet.pki.client_certificate:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    identity: alice
    subject:
      CN: Alice Example
      O: Example Org
    email: alice@example.org
    renew_before: 30d
  delegate_to: ca.example.org
  register: alice_cert

- name: All CA modules share the CA settings through their action group
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: /var/lib/certfleet/ca
      ca_passphrase: "{{ vault_ca_passphrase }}"
  block:
    - name: The VPN gateway's users have certificates for EAP-TLS with a Windows UPN
      certfleet.pki.client_certificate:
        identity: "{{ item.uid }}"
        subject:
          CN: "{{ item.name }}"
        email: "{{ item.mail }}"
        sans:
          - "UPN:{{ item.uid }}@corp.example.org"
        profile: smartcard
        renew_before: 20%
      loop: "{{ vpn_users }}"

    - name: A device that keeps its own key is certified from its CSR
      certfleet.pki.client_certificate:
        identity: kiosk-17
        csr: "{{ lookup('ansible.builtin.file', 'csr/kiosk-17.csr') }}"
        valid_days: 90
'''

RETURN = r'''
action:
  description: What happened, C(issued) (the identity had no current certificate), C(renewed), or C(none).
  returned: always
  type: str
  sample: renewed
reason:
  description: Why it issued or renewed (C(null) when nothing was done).
  returned: always
  type: str
  sample: "expires at 2027-01-10T08:00:00Z, within renew_before 30d"
reasons:
  description: The same reasons as a list.
  returned: always
  type: list
  elements: str
reason_code:
  description:
    - The leading reason as a stable code to branch on (the texts may change).
    - C(no_certificate), C(previous_revoked) (issued); C(force), C(expired), C(renew_window), C(subject_changed),
      C(sans_changed), C(profile_changed), C(key_changed), C(key_source_changed), C(key_type_changed) (renewed);
      C(up_to_date) or C(kept) (O(renew=false)) when nothing was done.
  returned: always
  type: str
  sample: renew_window
reason_codes:
  description: The code of every reason, in the order of RV(reasons).
  returned: always
  type: list
  elements: str
  sample: [renew_window, sans_changed]
identity:
  description: The identity.
  returned: always
  type: str
  sample: alice
serial:
  description: Serial number of the current certificate, upper-case hex without colons. C(null) in check mode when
    a certificate would be issued.
  returned: always
  type: str
  sample: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
previous_serial:
  description: The certificate this one replaced (pending revocation until revoked), if any.
  returned: always
  type: str
subject:
  description: The certificate's subject, RFC 4514.
  returned: always
  type: str
  sample: CN=Alice Example,O=Example Org
sans:
  description: The subjectAltName entries.
  returned: always
  type: list
  elements: str
  sample: ["email:alice@example.org"]
profile:
  description: The certificate profile.
  returned: always
  type: str
key_type:
  description: The key type of the certificate.
  returned: always
  type: str
not_before:
  description: Start of validity, ISO 8601 UTC.
  returned: always
  type: str
  sample: "2026-11-21T08:00:00Z"
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: always
  type: str
  sample: "2027-11-21T08:05:00Z"
fingerprint_sha256:
  description: SHA-256 fingerprint, upper-case hex without colons.
  returned: always
  type: str
fingerprint_sha1:
  description: SHA-1 fingerprint (the Windows certificate thumbprint), upper-case hex without colons.
  returned: always
  type: str
certificate:
  description: The certificate, PEM.
  returned: always
  type: str
chain:
  description: The CA certificate and any issuers above it, PEM.
  returned: always
  type: str
issuer:
  description: Subject of the issuing CA, RFC 4514.
  returned: always
  type: str
  sample: CN=Example Org Client CA,O=Example Org,C=DE
issuer_cn:
  description: Common name of the issuing CA (for example for Chromium's AutoSelectCertificateForUrls filter).
  returned: always
  type: str
  sample: Example Org Client CA
key_status:
  description: C(held) (the CA host holds the key for export), C(purged) or C(endpoint) (issued from a CSR).
  returned: when a certificate exists
  type: str
key_retain_until:
  description: When a held key will be purged, ISO 8601 UTC.
  returned: when a certificate exists
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import (
    KEY_RETENTION_DAYS, KEY_TYPE, RENEW_BEFORE, VALID_DAYS,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import PROFILES
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            identity={'type': 'str', 'required': True},
            subject={'type': 'dict'},
            email={'type': 'str'},
            sans={'type': 'list', 'elements': 'str'},
            profile={'type': 'str', 'default': 'client', 'choices': list(PROFILES)},
            key_type={'type': 'str', 'default': KEY_TYPE,
                      'choices': ['rsa2048', 'rsa3072', 'rsa4096', 'ec-p256', 'ec-p384']},
            valid_days={'type': 'int', 'default': VALID_DAYS},
            renew_before={'type': 'str', 'default': RENEW_BEFORE},
            renew={'type': 'bool', 'default': True},
            force={'type': 'bool', 'default': False},
            csr={'type': 'str'},
            key_retention={'type': 'int', 'default': KEY_RETENTION_DAYS, 'no_log': False},
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], store_url=params['ca_store']) as ca:
            wanted = ca.build_wanted(
                identity=params['identity'], subject=params['subject'], email=params['email'], sans=params['sans'],
                profile=params['profile'], key_type=params['key_type'], valid_days=params['valid_days'],
                renew_before=params['renew_before'], force=params['force'], csr=params['csr'],
                key_retention=params['key_retention'], renew=params['renew'])
            return ca.ensure_certificate(wanted, check_mode=module.check_mode)

    run(module, operation)


if __name__ == '__main__':
    main()
