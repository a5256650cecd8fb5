#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ca
short_description: Create or import the managed CA and keep its issuance policy
version_added: 0.1.0
description:
  - Creates a self-signed root CA in O(ca_path) or O(ca_store), or imports an existing CA certificate and key (an
    intermediate signed by an offline root, or the C(ca.crt)/C(ca.key) of an easy-rsa or OpenSSL CA).
  - The CA key is stored encrypted with O(ca_passphrase). A CA without a passphrase is created only with
    O(allow_unencrypted_key=true), and every run then warns.
  - On later runs it keeps O(crl_url) and O(policy) as given (C(action=updated)), and never replaces an existing CA
    with another one; a different subject, key type or imported certificate is an error.
  - The policy is checked by M(certfleet.pki.client_certificate) before anything is issued.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reports whether the CA would be created, imported or updated without writing anything.
    support: full
  diff_mode:
    description: Shows the CRL URL and policy before and after.
    support: full
  idempotent:
    description: A second run with the same parameters reports C(changed=false).
    support: full
options:
  subject:
    description:
      - 'Subject of a new root CA, for example C({CN: Example Client CA, O: Example Org, C: DE}).'
      - Required to create a CA; must equal the existing CA's subject on later runs.
    type: dict
  key_type:
    description: Key type of a new CA.
    type: str
    choices: [rsa2048, rsa3072, rsa4096, ec-p256, ec-p384]
    default: rsa3072
  valid_days:
    description: Lifetime of a new root CA in days. Client certificates never outlive the CA.
    type: int
    default: 3650
  crl_url:
    description:
      - URL where the CRL will be published. When set, issued certificates carry it as their CRL Distribution
        Point. Changing it affects certificates issued afterwards.
    type: str
  policy:
    description: The issuance policy, checked before any certificate is written.
    type: dict
    suboptions:
      allowed_domains:
        description:
          - Domains that e-mail, UPN and DNS names may use. C(example.org) allows C(example.org) and its
            subdomains. Empty allows any.
        type: list
        elements: str
      required_subject:
        description:
          - Subject attributes that must equal the organisation's registered values, for example
            C(O), C(L), C(ST) and C(C) of the organisation. Absent attributes are filled in; different values
            are refused.
        type: dict
      max_valid_days:
        description: The longest lifetime a client certificate may have.
        type: int
      allowed_key_types:
        description: Key types a client certificate may have (generated or from a CSR). Empty allows all.
        type: list
        elements: str
        choices: [rsa2048, rsa3072, rsa4096, ec-p256, ec-p384]
  import_certificate:
    description:
      - An existing CA certificate to import, PEM text or a path. It must be a CA (basicConstraints C(CA:true)
        with keyCertSign) and valid now.
    type: str
  import_private_key:
    description: The imported CA's private key, PEM text or a path (PKCS#8 or traditional, encrypted or not).
    type: str
  import_passphrase:
    description: Passphrase of O(import_private_key) when it is encrypted.
    type: str
  import_chain:
    description:
      - The issuers above an imported intermediate (PEM text or a path, nearest first). Each must have signed the
        one below it. They are returned in every RV(chain).
    type: str
  allow_unencrypted_key:
    description: Store the CA key without encryption when no O(ca_passphrase) is given. Not recommended.
    type: bool
    default: false
seealso:
  - module: certfleet.pki.client_certificate
  - module: certfleet.pki.crl
'''

EXAMPLES = r'''
- name: The organisation's client CA exists, with its issuance policy
  certfleet.pki.ca:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    subject:
      CN: Example Org Client CA
      O: Example Org
      C: DE
    key_type: ec-p384
    valid_days: 3650
    crl_url: http://pki.example.org/client-ca.crl
    policy:
      allowed_domains: [example.org]
      required_subject: {O: Example Org, L: Berlin, ST: Berlin, C: DE}
      max_valid_days: 397
      allowed_key_types: [rsa2048, rsa3072, ec-p256]

- name: An existing easy-rsa CA is taken over
  certfleet.pki.ca:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    import_certificate: /etc/easy-rsa/pki/ca.crt
    import_private_key: /etc/easy-rsa/pki/private/ca.key
    import_passphrase: "{{ vault_easyrsa_passphrase }}"
'''

RETURN = r'''
action:
  description: C(created), C(imported), C(updated) (CRL URL or policy changed) or C(none).
  returned: always
  type: str
  sample: created
ca:
  description: The CA certificate's details (no key). Only C(subject) and C(key_type) in check mode before creation.
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
  description: The CA certificate, PEM (C(null) in check mode before creation).
  returned: always
  type: str
chain:
  description: The CA certificate followed by any imported issuers, PEM.
  returned: when the CA exists
  type: str
policy:
  description: The issuance policy in force.
  returned: always
  type: dict
crl_url:
  description: The CRL distribution point written into new certificates.
  returned: always
  type: str
ca_path:
  description: Absolute path of the CA directory; V(null) when the CA is in O(ca_store).
  returned: always
  type: str
ca_store:
  description: The shared store that holds the CA, without its password; V(null) for the embedded store.
  returned: always
  type: str
  sample: postgresql://certfleet@db.example.org:5432/certfleet
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import KEY_TYPES
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            subject={'type': 'dict'},
            key_type={'type': 'str', 'default': 'rsa3072', 'choices': list(KEY_TYPES)},
            valid_days={'type': 'int', 'default': 3650},
            crl_url={'type': 'str'},
            policy={'type': 'dict', 'options': {
                'allowed_domains': {'type': 'list', 'elements': 'str'},
                'required_subject': {'type': 'dict'},
                'max_valid_days': {'type': 'int'},
                'allowed_key_types': {'type': 'list', 'elements': 'str', 'choices': list(KEY_TYPES)},
            }},
            import_certificate={'type': 'str'},
            import_private_key={'type': 'str', 'no_log': True},
            import_passphrase={'type': 'str', 'no_log': True},
            import_chain={'type': 'str'},
            allow_unencrypted_key={'type': 'bool', 'default': False},
        ),
        mutually_exclusive=[('subject', 'import_certificate')],
        required_together=[('import_certificate', 'import_private_key')],
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params
    policy = params['policy']
    if policy is not None:
        policy = {key: value for key, value in policy.items() if value is not None}
    run(module, lambda: ensure_ca(
        ca_path=params['ca_path'], store_url=params['ca_store'], ca_passphrase=params['ca_passphrase'],
        subject=params['subject'], key_type=params['key_type'], valid_days=params['valid_days'],
        crl_url=params['crl_url'], policy=policy,
        import_certificate=params['import_certificate'], import_private_key=params['import_private_key'],
        import_passphrase=params['import_passphrase'], import_chain=params['import_chain'],
        allow_unencrypted_key=params['allow_unencrypted_key'], check_mode=module.check_mode))


if __name__ == '__main__':
    main()
