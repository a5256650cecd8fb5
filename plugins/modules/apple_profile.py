#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: apple_profile
short_description: Write an Apple configuration profile (.mobileconfig) carrying a client certificate and its CA
version_added: 0.1.0
description:
  - Writes an XML configuration profile for iPhone, iPad and macOS, installed by the user (AirDrop, mail, Settings)
    or pushed by an MDM. It holds a C(com.apple.security.pkcs12) payload with the identity's PKCS#12 (certificate and
    private key) and, when O(ca_certificate) is given, a C(com.apple.security.root) payload with the CA.
  - The profile identifier and every payload UUID are derived from O(identity) (uuid5 over a fixed namespace, the
    identifier, the identity and the payload type), so the profile for a renewed certificate has the same identifier
    and UUIDs and replaces the old profile on the device instead of adding a second one.
  - Idempotent on content, not bytes. The module opens the PKCS#12 inside an existing profile with O(pkcs12_password)
    and compares the certificate's fingerprint, the key, the chain and the encryption scheme, the CA certificate and
    every other key of the profile. It rewrites the file only when one of those changed (re-encrypting the same
    PKCS#12 changes every byte, so bytes are not compared). It fixes a wrong file mode without rewriting.
  - The file is written atomically with mode 0600; it holds a private key (encrypted with O(pkcs12_password)).
  - iOS and macOS refuse PKCS#12 payloads encrypted with AES/PBES2. With O(pkcs12_encryption=legacy) (the default)
    the PKCS#12 is re-encrypted the legacy way (3DES, SHA-1 MAC) with the same password before it is embedded.
  - The profile is not signed; a device shows it as "Not Verified" when a user installs it by hand. Signing is out of
    scope (an MDM signs what it pushes).
author:
  - certfleet.pki developers (@certfleet)
attributes:
  check_mode:
    description: Reports whether the profile would be written, and why, without writing.
    support: full
  diff_mode:
    description: Shows the profile's keys, payload UUIDs and certificate fingerprints before and after; never the
      PKCS#12 or the password.
    support: full
  idempotent:
    description: A second run with the same parameters reports C(changed=false), although a re-encrypted PKCS#12
      differs in every byte.
    support: full
options:
  dest:
    description:
      - Where to write the profile (conventionally with the extension C(.mobileconfig)). The folder must exist.
      - A O(dest) that is a symbolic link is refused and left as it is.
    type: path
    required: true
  owner:
    description:
      - The user (name or numeric uid) whose rights are used to write O(dest) when the module runs as root, so a
        folder in a user's home that is a link the user planted leads only where that user could write anyway,
        and the profile is that user's file. A place the user may not write is refused, naming host, user and
        path.
      - Default, the owner of the first folder on the way to O(dest) that root does not own; nothing is switched
        when root owns them all.
    type: str
  identity:
    description:
      - The identity the certificate belongs to (as in M(certfleet.pki.client_certificate)). The profile identifier
        and the payload UUIDs derive from it.
    type: str
    required: true
  pkcs12_path:
    description:
      - The identity's PKCS#12 file, as written by M(certfleet.pki.client_certificate_export).
    type: path
    required: true
  pkcs12_password:
    description:
      - Password of O(pkcs12_path). The device asks the user for it when the profile is installed, unless
        O(include_password) puts it into the profile.
    type: str
    required: true
  pkcs12_encryption:
    description:
      - V(legacy) re-encrypts the PKCS#12 with 3DES and a SHA-1 MAC (what iOS and macOS import) before embedding it.
      - V(keep) embeds O(pkcs12_path) unchanged (with a warning when it uses AES/PBES2).
    type: str
    choices: [legacy, keep]
    default: legacy
  include_password:
    description:
      - Put O(pkcs12_password) into the payload (key C(Password)) so the device installs without asking.
      - The password is then a secret in the file, next to the key it protects; anyone who gets the file gets the key.
        Only use it for profiles an MDM delivers over its own protected channel.
    type: bool
    default: false
  ca_certificate:
    description:
      - The issuing CA (PEM text or path) for a C(com.apple.security.root) payload. The certificate must be issued by
        it. Installing a root payload asks the user to enable full trust for it in Settings on iOS.
    type: str
  display_name:
    description:
      - C(PayloadDisplayName) of the profile. Defaults to "Client certificate for O(identity)".
    type: str
  organization:
    description:
      - C(PayloadOrganization) of the profile.
    type: str
  description:
    description:
      - C(PayloadDescription) of the profile.
    type: str
  identifier:
    description:
      - C(PayloadIdentifier) of the profile. Defaults to O(identifier_prefix), a dot and O(identity) (characters a
        reverse-DNS name cannot hold are replaced and a short hash of the identity is appended).
      - Changing it, or O(identity), changes every UUID, and devices then keep the old profile next to the new one.
    type: str
  identifier_prefix:
    description:
      - Reverse-DNS prefix of the default O(identifier), such as C(org.example.pki).
    type: str
    default: certfleet.pki
requirements:
  - cryptography >= 42.0 where the module runs
seealso:
  - module: certfleet.pki.client_certificate_export
  - module: certfleet.pki.keychain_certificate
'''

EXAMPLES = r'''
- name: Alice's PKCS#12 exists for the profile (legacy encryption, as Apple devices need)
  certfleet.pki.client_certificate_export:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    identity: alice
    dest: /srv/profiles/alice.p12
    password: "{{ alice_transport_password }}"
    encryption: legacy

- name: Alice's iPhone profile carries her certificate and the CA
  certfleet.pki.apple_profile:
    dest: /srv/profiles/alice.mobileconfig
    identity: alice
    pkcs12_path: /srv/profiles/alice.p12
    pkcs12_password: "{{ alice_transport_password }}"
    ca_certificate: /var/lib/certfleet/ca/ca.pem
    organization: Example Org
    display_name: Example Org VPN certificate
    identifier_prefix: org.example.pki
  register: alice_profile

- name: An MDM-delivered profile that installs without asking for the password
  certfleet.pki.apple_profile:
    dest: /srv/mdm/alice.mobileconfig
    identity: alice
    pkcs12_path: /srv/profiles/alice.p12
    pkcs12_password: "{{ alice_transport_password }}"
    include_password: true
    ca_certificate: /var/lib/certfleet/ca/ca.pem
'''

RETURN = r'''
dest:
  description: Path of the profile.
  returned: always
  type: str
reasons:
  description: Why the profile was (or would be) written or its mode fixed; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["the embedded certificate is 5D1C..., wanted 9A0B..."]
profile_identifier:
  description: C(PayloadIdentifier) of the profile.
  returned: always
  type: str
  sample: org.example.pki.alice
profile_uuid:
  description: C(PayloadUUID) of the profile.
  returned: always
  type: str
  sample: 0F6B1D0E-3C57-5A8E-9B41-27D5E4C3A1F2
payload_uuids:
  description: C(PayloadUUID) of each payload, by payload type.
  returned: always
  type: dict
  sample: {"com.apple.security.pkcs12": "8E2D...", "com.apple.security.root": "41A7..."}
fingerprint_sha256:
  description: SHA-256 fingerprint of the identity's certificate, upper-case hex.
  returned: always
  type: str
fingerprint_sha1:
  description: SHA-1 fingerprint of the identity's certificate (what macOS and Windows show), upper-case hex.
  returned: always
  type: str
serial:
  description: Serial number of the identity's certificate, upper-case hex.
  returned: always
  type: str
not_after:
  description: End of validity of the identity's certificate, ISO 8601 UTC.
  returned: always
  type: str
ca_fingerprint_sha256:
  description: SHA-256 fingerprint of the CA in the root payload, or C(null) without O(ca_certificate).
  returned: always
  type: str
includes_password:
  description: Whether the profile carries the PKCS#12 password.
  returned: always
  type: bool
pkcs12_encryption:
  description: How the embedded PKCS#12 is encrypted (V(legacy), V(modern), ...).
  returned: always
  type: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import require_cryptography, run
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import as_owner_of
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.apple_profile import ensure_apple_profile


def main():
    module = AnsibleModule(
        argument_spec={
            'dest': {'type': 'path', 'required': True},
            'identity': {'type': 'str', 'required': True},
            'pkcs12_path': {'type': 'path', 'required': True},
            'pkcs12_password': {'type': 'str', 'required': True, 'no_log': True},
            'pkcs12_encryption': {'type': 'str', 'default': 'legacy', 'choices': ['legacy', 'keep']},
            'include_password': {'type': 'bool', 'default': False, 'no_log': False},
            'ca_certificate': {'type': 'str'},
            'display_name': {'type': 'str'},
            'organization': {'type': 'str'},
            'description': {'type': 'str'},
            'identifier': {'type': 'str'},
            'identifier_prefix': {'type': 'str', 'default': 'certfleet.pki'},
            'owner': {'type': 'str'},
        },
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = dict(module.params)
    params['check_mode'] = module.check_mode
    folder = os.path.dirname(os.path.abspath(params['dest']))
    run(module, lambda: as_owner_of(folder, ensure_apple_profile, owner=params.pop('owner'),
                                    files=('pkcs12_path', 'ca_certificate'), **params))


if __name__ == '__main__':
    main()
