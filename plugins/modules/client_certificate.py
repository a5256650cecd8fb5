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
  - With O(certificates) it ensures many identities in one call (one round trip to the CA host). Every entry is
    validated first and a bad entry fails the whole call, naming it (C(certificates[3].subject)), before anything is
    written; every entry is decided with the same rule as a single identity; and every new certificate is written
    in one store transaction. The per-entry results are in RV(certificates), in the order of the entries.
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
      - Exactly one of O(identity) and O(certificates) is required.
    type: str
  certificates:
    description:
      - Ensure many identities in one call instead of one task per identity.
      - O(profile), O(key_type), O(valid_days), O(renew_before), O(renew), O(force) and O(key_retention) are the
        defaults for the entries that do not set them.
      - Every entry is validated before anything is written; an invalid entry or an identity given twice fails the
        call and names the entry (for example C(certificates[3].subject)). Every new certificate is written in one
        store transaction.
      - Mutually exclusive with O(identity), O(subject), O(email), O(sans) and O(csr) (a batch entry is always
        issued with a key the CA host generates).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      identity:
        description: The identity, as O(identity).
        type: str
        required: true
      subject:
        description: Subject attributes, as O(subject).
        type: dict
      email:
        description: The e-mail address added to the subjectAltName, as O(email).
        type: str
      sans:
        description: subjectAltName entries, as O(sans).
        type: list
        elements: str
      profile:
        description: The certificate profile, as O(profile). Defaults to O(profile).
        type: str
        choices: [client, client_email, smartcard, client_email_smartcard]
      key_type:
        description: The key type the CA host generates, as O(key_type). Defaults to O(key_type).
        type: str
        choices: [rsa2048, rsa3072, rsa4096, ec-p256, ec-p384]
      valid_days:
        description: Lifetime of a newly issued certificate in days. Defaults to O(valid_days).
        type: int
      renew_before:
        description: When to renew before expiry, as O(renew_before). Defaults to O(renew_before).
        type: str
      renew:
        description: With V(false) a valid current certificate is kept, as O(renew). Defaults to O(renew).
        type: bool
      force:
        description: Renew this entry even when its current certificate is fine. Defaults to O(force).
        type: bool
  subject:
    description:
      - 'Subject attributes, for example C({CN: Alice Example, O: Example Org}).'
      - Known names are C(CN), C(O), C(OU), C(L), C(ST), C(C), C(DC), C(emailAddress), C(serialNumber), C(UID),
        C(GN), C(SN), C(title), C(street) (long forms such as C(commonName) work too). A value may be a list for
        attributes that repeat (C(OU), C(DC)).
      - Required with O(identity) unless O(csr) is given, in which case the CSR's subject is used when this is
        omitted.
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

    - name: Every due identity of the fleet is issued or renewed in one call
      certfleet.pki.client_certificate:
        renew_before: 20%
        certificates:
          - identity: alice
            subject:
              CN: Alice Example
            email: alice@example.org
          - identity: kiosk-17
            subject:
              CN: kiosk-17
            key_type: ec-p256
            valid_days: 90
          - identity: bob
            subject:
              CN: Bob Example
            force: true
      register: fleet_certs

    - name: Show what the batch did
      ansible.builtin.debug:
        msg: "{{ fleet_certs.counts }}; renewed {{ fleet_certs.certificates | selectattr('action', 'eq', 'renewed')
          | map(attribute='identity') | list }}"
'''

RETURN = r'''
action:
  description: What happened, C(issued) (the identity had no current certificate), C(renewed), or C(none).
  returned: when O(identity) is given
  type: str
  sample: renewed
reason:
  description: Why it issued or renewed (C(null) when nothing was done).
  returned: when O(identity) is given
  type: str
  sample: "expires at 2027-01-10T08:00:00Z, within renew_before 30d"
reasons:
  description: The same reasons as a list.
  returned: when O(identity) is given
  type: list
  elements: str
reason_code:
  description:
    - The leading reason as a stable code to branch on (the texts may change).
    - C(no_certificate), C(previous_revoked) (issued); C(force), C(expired), C(renew_window), C(subject_changed),
      C(sans_changed), C(profile_changed), C(key_changed), C(key_source_changed), C(key_type_changed) (renewed);
      C(up_to_date) or C(kept) (O(renew=false)) when nothing was done.
  returned: when O(identity) is given
  type: str
  sample: renew_window
reason_codes:
  description: The code of every reason, in the order of RV(reasons).
  returned: when O(identity) is given
  type: list
  elements: str
  sample: [renew_window, sans_changed]
identity:
  description: The identity.
  returned: when O(identity) is given
  type: str
  sample: alice
serial:
  description: Serial number of the current certificate, upper-case hex without colons. C(null) in check mode when
    a certificate would be issued.
  returned: when O(identity) is given
  type: str
  sample: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
previous_serial:
  description: The certificate this one replaced (pending revocation until revoked), if any.
  returned: when O(identity) is given
  type: str
subject:
  description: The certificate's subject, RFC 4514.
  returned: when O(identity) is given
  type: str
  sample: CN=Alice Example,O=Example Org
sans:
  description: The subjectAltName entries.
  returned: when O(identity) is given
  type: list
  elements: str
  sample: ["email:alice@example.org"]
profile:
  description: The certificate profile.
  returned: when O(identity) is given
  type: str
key_type:
  description: The key type of the certificate.
  returned: when O(identity) is given
  type: str
not_before:
  description: Start of validity, ISO 8601 UTC.
  returned: when O(identity) is given
  type: str
  sample: "2026-11-21T08:00:00Z"
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: when O(identity) is given
  type: str
  sample: "2027-11-21T08:05:00Z"
fingerprint_sha256:
  description: SHA-256 fingerprint, upper-case hex without colons.
  returned: when O(identity) is given
  type: str
fingerprint_sha1:
  description: SHA-1 fingerprint (the Windows certificate thumbprint), upper-case hex without colons.
  returned: when O(identity) is given
  type: str
certificate:
  description: The certificate, PEM.
  returned: when O(identity) is given
  type: str
chain:
  description: The CA certificate and any issuers above it, PEM.
  returned: when O(identity) is given
  type: str
issuer:
  description: Subject of the issuing CA, RFC 4514.
  returned: when O(identity) is given
  type: str
  sample: CN=Example Org Client CA,O=Example Org,C=DE
issuer_cn:
  description: Common name of the issuing CA (for example for Chromium's AutoSelectCertificateForUrls filter).
  returned: when O(identity) is given
  type: str
  sample: Example Org Client CA
key_status:
  description: C(held) (the CA host holds the key for export), C(purged) or C(endpoint) (issued from a CSR).
  returned: when O(identity) is given and a certificate exists
  type: str
key_retain_until:
  description: When a held key will be purged, ISO 8601 UTC.
  returned: when O(identity) is given and a certificate exists
  type: str
certificates:
  description:
    - One result per entry of O(certificates), in the same order, each with the keys of the single-identity result
      (RV(identity), RV(action), RV(reason), RV(reasons), RV(reason_code), RV(reason_codes), RV(serial),
      RV(previous_serial), RV(subject), RV(sans), RV(profile), RV(key_type), RV(not_before), RV(not_after),
      RV(fingerprint_sha256), RV(fingerprint_sha1), RV(certificate), RV(chain), RV(issuer), RV(issuer_cn), and
      RV(key_status) and RV(key_retain_until) when a certificate exists) and C(changed).
    - No private key.
  returned: when O(certificates) is given
  type: list
  elements: dict
  contains:
    identity:
      description: The entry's identity.
      type: str
      sample: alice
    changed:
      description: Whether this entry was issued or renewed (would be, in check mode).
      type: bool
    action:
      description: C(issued), C(renewed) or C(none), as RV(action).
      type: str
      sample: renewed
    reason_code:
      description: The leading reason, as RV(reason_code).
      type: str
      sample: renew_window
    serial:
      description: Serial number of the current certificate (C(null) in check mode when one would be issued).
      type: str
    previous_serial:
      description: The certificate this one replaced, if any.
      type: str
    certificate:
      description: The certificate, PEM (C(null) in check mode when one would be issued).
      type: str
  sample:
    - identity: alice
      changed: true
      action: issued
      reason_code: no_certificate
      serial: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
      previous_serial: null
counts:
  description: How many entries were issued, renewed and left unchanged (would be, in check mode).
  returned: when O(certificates) is given
  type: dict
  contains:
    issued:
      description: Entries that got their first certificate (or one after the previous was revoked).
      type: int
    renewed:
      description: Entries whose certificate was renewed.
      type: int
    unchanged:
      description: Entries left as they were.
      type: int
  sample: {issued: 2, renewed: 1, unchanged: 40}
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

KEY_TYPES = ['rsa2048', 'rsa3072', 'rsa4096', 'ec-p256', 'ec-p384']
# A batch entry's options; those it omits (None) take the top-level options of BATCH_DEFAULTS.
CERTIFICATE_OPTIONS = {
    'identity': {'type': 'str', 'required': True},
    'subject': {'type': 'dict'},
    'email': {'type': 'str'},
    'sans': {'type': 'list', 'elements': 'str'},
    'profile': {'type': 'str', 'choices': list(PROFILES)},
    'key_type': {'type': 'str', 'choices': KEY_TYPES},
    'valid_days': {'type': 'int'},
    'renew_before': {'type': 'str'},
    'renew': {'type': 'bool'},
    'force': {'type': 'bool'},
}
BATCH_DEFAULTS = ('profile', 'key_type', 'valid_days', 'renew_before', 'key_retention', 'renew', 'force')


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            identity={'type': 'str'},
            certificates={'type': 'list', 'elements': 'dict', 'options': CERTIFICATE_OPTIONS},
            subject={'type': 'dict'},
            email={'type': 'str'},
            sans={'type': 'list', 'elements': 'str'},
            profile={'type': 'str', 'default': 'client', 'choices': list(PROFILES)},
            key_type={'type': 'str', 'default': KEY_TYPE, 'choices': KEY_TYPES},
            valid_days={'type': 'int', 'default': VALID_DAYS},
            renew_before={'type': 'str', 'default': RENEW_BEFORE},
            renew={'type': 'bool', 'default': True},
            force={'type': 'bool', 'default': False},
            csr={'type': 'str'},
            key_retention={'type': 'int', 'default': KEY_RETENTION_DAYS, 'no_log': False},
        ),
        required_one_of=[('identity', 'certificates')],
        mutually_exclusive=[('identity', 'certificates'), ('csr', 'certificates'), ('subject', 'certificates'),
                            ('email', 'certificates'), ('sans', 'certificates')],
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], store_url=params['ca_store'],
                       for_identity=params['identity']) as ca:
            if params['certificates'] is not None:
                return ca.ensure_certificates(params['certificates'], check_mode=module.check_mode,
                                              defaults={name: params[name] for name in BATCH_DEFAULTS})
            wanted = ca.build_wanted(
                identity=params['identity'], subject=params['subject'], email=params['email'], sans=params['sans'],
                profile=params['profile'], key_type=params['key_type'], valid_days=params['valid_days'],
                renew_before=params['renew_before'], force=params['force'], csr=params['csr'],
                key_retention=params['key_retention'], renew=params['renew'])
            return ca.ensure_certificate(wanted, check_mode=module.check_mode)

    run(module, operation)


if __name__ == '__main__':
    main()
