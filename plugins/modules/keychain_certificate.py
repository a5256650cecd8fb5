#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: keychain_certificate
short_description: Ensure a client certificate and its key are in a macOS keychain, trusted and preferred for URLs
version_added: 0.1.0
description:
  - Imports a PKCS#12 (certificate and private key) into the user's login keychain, the System keychain or a keychain
    file with C(security import), trusts the issuing CA, and sets identity preferences that bind the certificate to
    service URLs (what Safari uses to pick a client certificate without asking). Idempotent by SHA-1 fingerprint,
    the hash macOS identifies keychain items by.
  - With O(state=absent) it removes certificates with their keys (C(security delete-identity)) by SHA-1 fingerprint,
    or every certificate issued by a CA except the ones to keep, so a renewed certificate replaces the old one.
  - B(What was verified where.) The command lines this module builds and its parsing of C(security)'s output are
    verified only by unit tests, against output in the exact format C(security) prints
    (C(tests/unit/plugins/module_utils/endpoints/test_keychain.py), samples cited there). It is run for real on
    macOS only by the GitHub Actions workflow C(.github/workflows/macos.yml) on a macOS runner. It has never run on
    a Mac in the project's own test environment.
  - Over SSH the login keychain is locked, and writing to it fails with "User interaction is not allowed". Give
    O(keychain_password) (the user's login password unless it was changed) to unlock it for the run; it stays
    unlocked until its own lock settings lock it again. The password reaches C(security unlock-keychain) on its
    standard input, never on a command line.
  - C(security import) takes the PKCS#12 password only on its command line (C(-P)), where other local processes can
    read it, and rejects PKCS#12 files encrypted with AES/PBES2 (the modern encryption of OpenSSL 3 and of
    M(certfleet.pki.client_certificate_export)). With O(reencrypt=true) (the default) the module opens the file
    itself, checks the password, and hands C(security) a temporary copy encrypted the legacy way (3DES, SHA-1 MAC)
    under a random one-time password, in a 0700 folder that is removed afterwards. With O(reencrypt=false) the file
    must already use C(encryption=legacy) and its password is passed with C(-P).
  - B(Trusting the CA needs a person on macOS 11 and later.) C(security add-trusted-cert) asks for an administrator's
    password (System keychain, admin trust domain) or the user's password (login keychain) in a dialog, also when
    run as root; without a logged-in GUI session it fails. The module first checks with C(security verify-cert)
    whether the CA is already trusted (for example by an MDM profile) and only then tries to add trust. For
    unattended fleets deliver the CA with a configuration profile (M(certfleet.pki.apple_profile), payload
    C(com.apple.security.root), installed through an MDM) and leave O(trust_ca=false).
  - Identity preferences are stored in the default keychain of the user who runs the module and read through that
    user's keychain search list; a keychain given as a path must be in that search list (C(security list-keychains))
    for Safari, and this module, to find the identity behind a preference.
author:
  - certfleet.pki developers (@certfleet)
attributes:
  check_mode:
    description: Reads the keychain (unlocking it when O(keychain_password) is given) and reports what it would
      import, trust, prefer or remove, without changing any item.
    support: full
  diff_mode:
    description: Shows subject, SHA-1 fingerprint, serial and expiry of the certificates in the keychain before and
      after.
    support: full
  idempotent:
    description: A second run with the same parameters reports C(changed=false). O(access_applications) and
      O(non_extractable) apply when a certificate is imported; they are not compared afterwards.
    support: partial
  platform:
    description: macOS only (C(/usr/bin/security)).
    support: full
    platforms: darwin
options:
  keychain:
    description:
      - V(login) (the login keychain of O(user), C(~/Library/Keychains/login.keychain-db)), V(system)
        (C(/Library/Keychains/System.keychain), needs root) or the path of a keychain file.
    type: str
    default: login
  user:
    description:
      - Whose login keychain to use with O(keychain=login). The module must run as that user (C(become_user)),
        because identity preferences and user trust settings belong to the user who runs C(security). Defaults to
        the user the module runs as.
    type: str
  keychain_password:
    description:
      - Unlocks the keychain for the run (the login keychain is locked in SSH sessions).
    type: str
  state:
    description:
      - V(present) imports the certificate and key of O(pkcs12_path), trusts O(ca_certificate) when O(trust_ca),
        and sets the identity preferences.
      - V(absent) removes the certificate of O(fingerprint_sha1), or every certificate issued by O(issuer) except
        O(keep_fingerprint_sha1), each with its private key.
    type: str
    choices: [present, absent]
    default: present
  pkcs12_path:
    description:
      - PKCS#12 file (on the Mac) with the certificate and its private key to import.
    type: path
  pkcs12_password:
    description:
      - Password of O(pkcs12_path).
    type: str
  reencrypt:
    description:
      - Hand C(security import) a temporary copy encrypted the legacy way under a one-time password (see the
        description). With V(false), O(pkcs12_path) must use legacy encryption and its password is passed on the
        command line of C(security import).
    type: bool
    default: true
  ca_certificate:
    description:
      - The issuing CA certificate, PEM text or the path of a PEM file on the Mac. The certificate of O(pkcs12_path)
        must be issued by it.
    type: str
  trust_ca:
    description:
      - Trust O(ca_certificate) as a root (C(add-trusted-cert -r trustRoot)) for O(trust_policies), in the admin
        trust domain for the System keychain and the user's domain otherwise. See the description for why this needs
        a person on macOS 11 and later.
    type: bool
    default: false
  trust_policies:
    description:
      - Policies the CA is trusted for. V(ssl) makes the identity valid for TLS client authentication
        (C(find-identity -p ssl-client)); macOS has no client-only SSL trust, so a CA trusted for V(ssl) could also
        vouch for TLS servers on this Mac. V(basic) is X.509 basic validation.
    type: list
    elements: str
    choices: [ssl, basic, smime, eap, IPSec]
    default: [ssl, basic]
  identity_preference_urls:
    description:
      - Services (URLs such as C(https://vpn.example.org/), host names, or C(*.example.org)) for which this
        certificate is the preferred identity, so Safari uses it without asking. A URL ending in C(/) covers the
        paths below it.
    type: list
    elements: str
    default: []
  access_applications:
    description:
      - Applications that may use the private key without asking (C(security import -T)), as absolute paths such as
        C(/Applications/Safari.app). When empty only C(/usr/bin/security) may. Since macOS 10.12 the key's partition
        list can still make an application ask once (answer "Always Allow"); this module does not change partition
        lists, which needs the keychain password on a command line.
    type: list
    elements: path
    default: []
  non_extractable:
    description:
      - Import the private key as non-extractable (C(security import -x)), so it cannot be exported from the keychain.
    type: bool
    default: false
  fingerprint_sha1:
    description:
      - With O(state=absent), the SHA-1 fingerprints (40 hex digits, colons allowed) of the certificates to remove.
        With O(issuer) too, each must have been issued by that CA or nothing is removed.
      - The C(certfleet.pki.deploy) role passes the older certificates of one identity here, so other identities from
        the same CA in the same keychain are left alone.
    type: list
    elements: str
    aliases: [fingerprints_sha1]
  issuer:
    description:
      - With O(state=absent), a CA certificate (PEM text or path); every certificate it issued is removed with its key,
        except O(keep_fingerprint_sha1).
    type: str
  keep_fingerprint_sha1:
    description:
      - SHA-1 fingerprints never removed by O(issuer), typically the certificate just imported.
    type: list
    elements: str
    default: []
  command_timeout:
    description:
      - Seconds one C(security) command may run. A command that takes longer is stopped and reported as probably
        waiting for a dialog on the Mac's screen (in a logged-in GUI session macOS may ask there for a keychain
        password or a trust confirmation instead of failing).
    type: int
    default: 300
notes:
  - Signing the PKCS#12 transport is out of scope; copy it to the Mac with C(no_log) and delete it afterwards (the
    role M(certfleet.pki.macos_keychain) and the C(deploy) role do).
requirements:
  - macOS with C(/usr/bin/security)
  - cryptography >= 42.0 on the Mac (in the Python that runs the module)
seealso:
  - module: certfleet.pki.apple_profile
  - module: certfleet.pki.client_certificate_export
  - module: certfleet.pki.nss_certificate
'''

EXAMPLES = r'''
- name: Alice's client certificate is in her login keychain and preferred for the VPN portal
  certfleet.pki.keychain_certificate:
    keychain: login
    user: alice
    keychain_password: "{{ vault_alice_login_password }}"
    pkcs12_path: /private/tmp/certfleet/alice.p12
    pkcs12_password: "{{ transport_password }}"
    ca_certificate: /private/tmp/certfleet/ca.pem
    identity_preference_urls:
      - https://vpn.example.org/
      - https://intranet.example.org/
    access_applications:
      - /Applications/Safari.app
  become: true
  become_user: alice
  register: alice_keychain

- name: Alice's superseded certificates from this CA are gone from her login keychain
  certfleet.pki.keychain_certificate:
    keychain: login
    user: alice
    keychain_password: "{{ vault_alice_login_password }}"
    state: absent
    issuer: /private/tmp/certfleet/ca.pem
    keep_fingerprint_sha1:
      - "{{ alice_keychain.certificate.fingerprint_sha1 }}"
  become: true
  become_user: alice

- name: The kiosk's machine certificate is in the System keychain with a key that cannot be exported
  certfleet.pki.keychain_certificate:
    keychain: system
    pkcs12_path: /private/tmp/certfleet/kiosk.p12
    pkcs12_password: "{{ transport_password }}"
    ca_certificate: /private/tmp/certfleet/ca.pem
    non_extractable: true
  become: true
'''

RETURN = r'''
keychain:
  description: Path of the keychain.
  returned: always
  type: str
  sample: /Users/alice/Library/Keychains/login.keychain-db
state:
  description: The state asked for.
  returned: always
  type: str
reasons:
  description: Why something changed (or would change in check mode); empty when nothing did.
  returned: always
  type: list
  elements: str
certificate:
  description: The certificate of O(pkcs12_path) (fingerprints, subject, issuer, serial, not_after); C(null) when
    no PKCS#12 was given.
  returned: always
  type: dict
  sample:
    fingerprint_sha1: 8A3544869D91B8C6972E44BC67F344529D359B91
    fingerprint_sha256: 2C8B3F0E6A9D5C4B7E1F0A2D3C4B5A6978877665544332211000FFEEDDCCBBAA
    subject: CN=Alice Example
    issuer: CN=Certfleet Client CA
    serial: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
    not_after: "2027-11-21T08:05:00Z"
imported:
  description: SHA-1 fingerprint of the certificate imported (or that would be, in check mode), else C(null).
  returned: always
  type: str
ca_fingerprint_sha1:
  description: SHA-1 fingerprint of O(ca_certificate) or O(issuer), else C(null).
  returned: always
  type: str
ca_trust_changed:
  description: Whether trust settings for the CA were added.
  returned: always
  type: bool
identity_preferences:
  description: The preferred identity (SHA-1 fingerprint, or C(null)) of each of O(identity_preference_urls) after
    the run.
  returned: always
  type: dict
  sample: {"https://vpn.example.org/": 8A3544869D91B8C6972E44BC67F344529D359B91}
preferences_changed:
  description: The URLs whose identity preference was set.
  returned: always
  type: list
  elements: str
removed:
  description: The certificates removed (or that would be, in check mode), with the same keys as RV(certificates).
  returned: always
  type: list
  elements: dict
certificates:
  description: What the keychain holds afterwards, no secrets. RV(certificates[].has_key) is true for identities
    (the private key is in the keychain); RV(certificates[].valid) tells whether the identity evaluates as valid for
    TLS client authentication, and RV(certificates[].trust_error) why not (for example C(CSSMERR_TP_NOT_TRUSTED)).
  returned: always
  type: list
  elements: dict
  contains:
    fingerprint_sha1:
      description: SHA-1 fingerprint, upper-case hex.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint, upper-case hex.
      type: str
    subject:
      description: Subject, RFC 4514.
      type: str
    issuer:
      description: Issuer, RFC 4514.
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
    is_ca:
      description: Whether it is a CA certificate.
      type: bool
    has_key:
      description: Whether its private key is in the keychain.
      type: bool
    valid:
      description: For identities, whether they evaluate as valid for TLS client authentication; C(null) otherwise.
      type: bool
    trust_error:
      description: For identities that are not valid, the CSSM error C(security) reports.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import require_cryptography, run
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.keychain import (
    TRUST_POLICIES, ensure_keychain_certificate,
)


def main():
    module = AnsibleModule(
        argument_spec={
            'keychain': {'type': 'str', 'default': 'login', 'no_log': False},
            'user': {'type': 'str'},
            'keychain_password': {'type': 'str', 'no_log': True},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            'pkcs12_path': {'type': 'path'},
            'pkcs12_password': {'type': 'str', 'no_log': True},
            'reencrypt': {'type': 'bool', 'default': True},
            'ca_certificate': {'type': 'str'},
            'trust_ca': {'type': 'bool', 'default': False},
            'trust_policies': {'type': 'list', 'elements': 'str', 'choices': list(TRUST_POLICIES),
                               'default': ['ssl', 'basic']},
            'identity_preference_urls': {'type': 'list', 'elements': 'str', 'default': []},
            'access_applications': {'type': 'list', 'elements': 'path', 'default': []},
            'non_extractable': {'type': 'bool', 'default': False},
            'fingerprint_sha1': {'type': 'list', 'elements': 'str', 'aliases': ['fingerprints_sha1']},
            'issuer': {'type': 'str'},
            'keep_fingerprint_sha1': {'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
            'command_timeout': {'type': 'int', 'default': 300},
        },
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = dict(module.params)
    params['check_mode'] = module.check_mode
    run(module, lambda: ensure_keychain_certificate(**params))


if __name__ == '__main__':
    main()
