#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_export
short_description: Write a client certificate, and its held key, to a PKCS#12, PEM or DER file
version_added: 0.1.0
description:
  - Writes the certificate of O(serial), or the current certificate of O(identity), to O(dest) on the CA host, for
    pickup (for example with M(ansible.builtin.fetch) or M(ansible.builtin.copy) with C(remote_src)).
  - The private key can only be exported while the CA host holds it, that is for a certificate that
    M(certfleet.pki.client_certificate) generated the key for, during its C(key_retention) days. The module fails
    with a message naming the certificate when the key was purged, when its retention window has ended, or when
    the certificate was issued from a CSR (its key never left the endpoint). A revoked certificate is never
    exported.
  - Idempotent by content, not by bytes. PKCS#12 and encrypted PEM are freshly salted on every write, so the
    module reads O(dest) back (with O(password)) and compares what it holds; the certificate, the key, the chain,
    the friendly name, the encryption and the iteration count for PKCS#12. It rewrites the file only when any of
    them differ or when O(dest) cannot be opened with O(password).
  - O(dest) is written atomically (through a temporary file in the same folder, then renamed) with mode C(0600),
    also for certificate-only exports; a file with another mode is set to C(0600) and reported as changed. The
    folder must exist.
  - O(ca_passphrase) is needed when the key is exported; a certificate-only export does not use the CA key.
  - The result never contains key material or O(password).
  - With O(batch), many certificates are exported in one call, one PKCS#12 file per item in O(dest_dir). The CA is
    opened once, every item is looked up in one read of the store, and the exports are audited in one transaction.
    Every item is checked (and its held key unwrapped) before any file is written, so a bad item anywhere fails the
    call, naming it (for example C(batch[2].identity)), and nothing is written.
  - With O(generate_passwords), each file of the batch gets its own one-time random password of 148 bits, written
    next to it as C(<file>.password) (mode C(0600)), as M(certfleet.pki.client_certificate_requests) hands over its
    passwords in a file. The passwords are never returned. Because such a password cannot be guessed, these files use
    2048 PBKDF2 rounds, the rounds of M(certfleet.pki.client_certificate_requests), rather than the 600000 for a
    password people choose. A later run reads the password file back, so an unchanged export is not rewritten.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Reads O(dest) (with O(batch), every file) and reports whether it would be written, without writing
      it.
    support: full
  diff_mode:
    description: No diff is produced; the file holds secrets.
    support: none
  idempotent:
    description:
      - A second run with the same parameters reports C(changed=false), because existing files are compared by
        their parsed content.
      - A new O(password) on every run (for example a one-time transport password, as the C(certfleet.pki.deploy)
        role uses) cannot open the existing file, so the file is written again.
      - Once the held key is purged (after O(certfleet.pki.client_certificate#module:key_retention) days) a key
        export that succeeded before fails.
    support: partial
options:
  serial:
    description:
      - Serial number of the certificate to export, hexadecimal (colons, C(0x) and lower case are accepted).
      - Mutually exclusive with O(identity) and O(batch); one of them is required.
    type: str
  identity:
    description:
      - Export the current certificate of this identity.
      - Mutually exclusive with O(serial) and O(batch); one of them is required.
    type: str
  batch:
    description:
      - Export many certificates in one call, one PKCS#12 file per item in O(dest_dir).
      - Each item names the certificate by C(identity) (its current certificate) or C(serial), not both.
      - Requires O(dest_dir) and either O(password) (one password for every file) or O(generate_passwords). Only
        V(pkcs12); O(friendly_name) is set per item.
      - An empty list exports nothing (C(changed=false)) and does not create O(dest_dir).
      - Mutually exclusive with O(serial), O(identity) and O(dest).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      identity:
        description: Export the current certificate of this identity.
        type: str
      serial:
        description: Export the certificate with this serial number.
        type: str
      file:
        description:
          - The file name in O(dest_dir), letters, digits and C(. _ @ + -), not starting with a dot.
          - Defaults to C(<identity>.p12). Two items writing one file are refused.
        type: str
      friendly_name:
        description: The PKCS#12 friendly name. Defaults to the certificate's identity.
        type: str
  dest_dir:
    description:
      - With O(batch), the folder that receives the PKCS#12 files (and their password files). It is created with mode
        C(0700) (its parent must exist), and an existing one is set to C(0700).
      - Mutually exclusive with O(dest).
    type: path
    version_added: 0.2.0
  generate_passwords:
    description:
      - With O(batch), protect each file with its own one-time random password, written to C(<file>.password)
        next to it (mode C(0600)) and never returned. O(password) must not be given then.
      - Unless O(iterations) is set, these files use 2048 PBKDF2 rounds.
    type: bool
    default: false
    version_added: 0.2.0
  format:
    description:
      - V(pkcs12) a PKCS#12 (C(.p12)/C(.pfx)) file with the key, the certificate and (with O(include_chain)) the
        CA chain, for browsers, Windows, macOS, Android and most VPN clients.
      - V(pem) the certificate, then the chain when O(include_chain), then the key when O(include_key), as
        PKCS#8 C(ENCRYPTED PRIVATE KEY) protected with O(password).
      - V(der) the certificate alone, binary.
    type: str
    choices: [pkcs12, pem, der]
    default: pkcs12
  dest:
    description:
      - The file to write on the CA host. Its folder must exist.
      - Required unless O(batch) is given (then O(dest_dir) is used).
    type: path
  password:
    description:
      - Protects the private key. Required and must not be empty whenever the key is exported (V(pkcs12), or
        V(pem) with O(include_key)).
      - Also used to read back an existing O(dest) to decide whether it is up to date.
      - With O(batch), the password of every file, unless O(generate_passwords) is set.
    type: str
  encryption:
    description:
      - How a PKCS#12 file is encrypted. Ignored for V(pem) and V(der).
      - V(modern) AES-256-CBC with PBKDF2-HMAC-SHA256 (600000 iterations by default) and an HMAC-SHA256
        integrity MAC. Read by OpenSSL 1.1.1 and later and by Windows 10 1809 (10.0.17763) / Server 2019 and
        later.
      - V(legacy) 3DES (C(pbeWithSHAAnd3-KeyTripleDES-CBC)) with SHA-1 (2048 iterations by default) and an
        HMAC-SHA1 MAC. Only for importers that cannot read V(modern), chiefly Windows before 10.0.17763 /
        Server 2019 and macOS C(security import). It is weak;
        protect such files with a strong O(password) and delete them after import.
      - A different encryption than the existing file has rewrites it.
    type: str
    choices: [modern, legacy]
    default: modern
  iterations:
    description:
      - PBKDF2 iteration count for the key of a PKCS#12 file, at least 1000. Ignored for V(pem) and V(der).
      - When omitted, 600000 for V(modern) and 2048 for V(legacy); with O(generate_passwords), 2048.
    type: int
  friendly_name:
    description:
      - The PKCS#12 friendly name (the label Windows and macOS show for the imported certificate).
      - Defaults to the certificate's identity. Ignored for V(pem) and V(der).
      - Not with O(batch); give C(friendly_name) per item there.
    type: str
  include_chain:
    description: Include the CA certificate and any issuers above it (V(pkcs12) and V(pem); V(der) never has it).
    type: bool
    default: true
  include_key:
    description:
      - Include the private key. Defaults to V(true) for V(pkcs12) and V(false) for V(pem) and V(der).
      - A V(pkcs12) export always carries the key (V(false) is an error); V(der) never does (V(true) is an error).
      - For V(pem) the key is written encrypted with O(password), never in the clear.
    type: bool
notes:
  - Export the key once and let the endpoint keep it; the CA host purges held keys after C(key_retention) days
    and when the certificate is revoked.
seealso:
  - module: certfleet.pki.client_certificate
  - module: certfleet.pki.client_certificate_info
'''

EXAMPLES = r'''
- name: Alice's certificate and key are in a PKCS#12 file on the CA host
  certfleet.pki.client_certificate_export:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    identity: alice
    dest: /var/lib/certfleet/export/alice.p12
    password: "{{ vault_alice_p12_password }}"
    friendly_name: Alice Example (Example Org VPN)
  delegate_to: ca.example.org

- name: The file is fetched for delivery
  ansible.builtin.fetch:
    src: /var/lib/certfleet/export/alice.p12
    dest: "exports/alice.p12"
    flat: true
  delegate_to: ca.example.org

- name: Exports for the laptops, with the CA settings shared through the action group
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: /var/lib/certfleet/ca
      ca_passphrase: "{{ vault_ca_passphrase }}"
  delegate_to: ca.example.org
  block:
    - name: A PKCS#12 file that Windows Server 2016 and macOS security import accept
      certfleet.pki.client_certificate_export:
        identity: "{{ item }}"
        dest: "/var/lib/certfleet/export/{{ item }}.pfx"
        password: "{{ vault_p12_passwords[item] }}"
        encryption: legacy
      loop: "{{ legacy_windows_users }}"

    - name: Certificate, chain and encrypted key as PEM for an OpenVPN client
      certfleet.pki.client_certificate_export:
        identity: kiosk-17
        format: pem
        include_key: true
        password: "{{ vault_kiosk_key_password }}"
        dest: /var/lib/certfleet/export/kiosk-17.pem

    - name: The certificate alone as DER, by serial
      certfleet.pki.client_certificate_export:
        serial: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
        format: der
        dest: /var/lib/certfleet/export/5F1B0C2D.cer

- name: The batch's PKCS#12 files, each with its own one-time password file, in one call
  certfleet.pki.client_certificate_export:
    ca_path: /var/lib/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    batch:
      - identity: alice
      - identity: bob
        friendly_name: Bob Example (Example Org VPN)
      - serial: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
        file: kiosk-17.p12
    dest_dir: /var/lib/certfleet/export/batch-1
    generate_passwords: true
  delegate_to: ca.example.org
  register: batch_export

- name: Each host's file and password are read from the paths the batch returned
  ansible.builtin.set_fact:
    my_p12: "{{ batch_export.exports | selectattr('identity', 'equalto', 'alice') | first }}"
'''

RETURN = r'''
dest:
  description: The file written (or compared).
  returned: without O(batch)
  type: str
  sample: /var/lib/certfleet/export/alice.p12
format:
  description: V(pkcs12), V(pem) or V(der).
  returned: always
  type: str
  sample: pkcs12
serial:
  description: Serial number of the exported certificate, upper-case hex without colons.
  returned: without O(batch)
  type: str
  sample: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
identity:
  description: The identity the certificate belongs to.
  returned: without O(batch)
  type: str
  sample: alice
fingerprint_sha256:
  description: SHA-256 fingerprint of the certificate, upper-case hex without colons.
  returned: without O(batch)
  type: str
fingerprint_sha1:
  description: SHA-1 fingerprint (the Windows certificate thumbprint), upper-case hex without colons.
  returned: without O(batch)
  type: str
not_after:
  description: End of the certificate's validity, ISO 8601 UTC.
  returned: without O(batch)
  type: str
  sample: "2027-11-21T08:05:00Z"
encryption:
  description: V(modern) or V(legacy) for V(pkcs12); C(null) for V(pem) and V(der).
  returned: always
  type: str
  sample: modern
iterations:
  description: PBKDF2 iterations of the PKCS#12 key; C(null) for V(pem) and V(der).
  returned: always
  type: int
  sample: 600000
includes_key:
  description: Whether the file holds the private key.
  returned: without O(batch)
  type: bool
  sample: true
includes_chain:
  description: Whether the file holds (with O(batch), the files hold) the CA chain.
  returned: always
  type: bool
  sample: true
dest_dir:
  description: With O(batch), the folder of the files.
  returned: with O(batch)
  type: str
  sample: /var/lib/certfleet/export/batch-1
generate_passwords:
  description: With O(batch), whether each file has its own generated password file.
  returned: with O(batch)
  type: bool
  sample: true
exports:
  description:
    - With O(batch), one entry per item, in the order of O(batch). Never holds a password, a key or file content.
    - In check mode, C(changed) tells whether the item's files would be written.
  returned: with O(batch)
  type: list
  elements: dict
  contains:
    identity:
      description: The identity the certificate belongs to.
      type: str
      sample: alice
    serial:
      description: Serial number of the exported certificate, upper-case hex without colons.
      type: str
      sample: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
    dest:
      description: The PKCS#12 file.
      type: str
      sample: /var/lib/certfleet/export/batch-1/alice.p12
    password_file:
      description: The file holding the PKCS#12 file's password with O(generate_passwords), else C(null).
      type: str
      sample: /var/lib/certfleet/export/batch-1/alice.p12.password
    changed:
      description: Whether this item's files were (in check mode, would be) written or had their mode fixed.
      type: bool
      sample: true
    fingerprint_sha256:
      description: SHA-256 fingerprint of the certificate, upper-case hex without colons.
      type: str
    fingerprint_sha1:
      description: SHA-1 fingerprint (the Windows certificate thumbprint), upper-case hex without colons.
      type: str
    not_after:
      description: End of the certificate's validity, ISO 8601 UTC.
      type: str
      sample: "2027-11-21T08:05:00Z"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.x509.pkcs12 import ENCRYPTIONS
from ansible_collections.certfleet.pki.plugins.module_utils.ca.export import EXPORT_FORMATS
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            serial={'type': 'str'},
            identity={'type': 'str'},
            format={'type': 'str', 'default': 'pkcs12', 'choices': list(EXPORT_FORMATS)},
            batch={'type': 'list', 'elements': 'dict', 'options': {
                'identity': {'type': 'str'},
                'serial': {'type': 'str'},
                'file': {'type': 'str'},
                'friendly_name': {'type': 'str'},
            }, 'mutually_exclusive': [('identity', 'serial')], 'required_one_of': [('identity', 'serial')]},
            dest={'type': 'path'},
            dest_dir={'type': 'path'},
            generate_passwords={'type': 'bool', 'default': False, 'no_log': False},
            password={'type': 'str', 'no_log': True},
            encryption={'type': 'str', 'default': 'modern', 'choices': list(ENCRYPTIONS)},
            iterations={'type': 'int'},
            friendly_name={'type': 'str'},
            include_chain={'type': 'bool', 'default': True},
            include_key={'type': 'bool', 'no_log': False},
        ),
        mutually_exclusive=[('serial', 'identity', 'batch'), ('dest', 'dest_dir'), ('dest', 'batch')],
        required_one_of=[('serial', 'identity', 'batch')],
        required_by={'batch': 'dest_dir', 'dest_dir': 'batch'},
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params
    # Only an export with the key needs the CA key (to unwrap the held key).
    with_key = params['include_key'] if params['include_key'] is not None else params['format'] == 'pkcs12'

    if params['batch'] is None and params['generate_passwords']:
        module.fail_json(msg='generate_passwords: applies to batch only; give password for a single export',
                         field='generate_passwords')

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], unlock=with_key, store_url=params['ca_store']) as ca:
            if params['batch'] is not None:
                return ca.export_many(batch=params['batch'], dest_dir=params['dest_dir'], password=params['password'],
                                      generate_passwords=params['generate_passwords'], format=params['format'],
                                      encryption=params['encryption'], iterations=params['iterations'],
                                      include_chain=params['include_chain'], friendly_name=params['friendly_name'],
                                      check_mode=module.check_mode)
            return ca.export(serial=params['serial'], identity=params['identity'], format=params['format'],
                             dest=params['dest'], password=params['password'], encryption=params['encryption'],
                             friendly_name=params['friendly_name'], include_chain=params['include_chain'],
                             include_key=params['include_key'], iterations=params['iterations'],
                             check_mode=module.check_mode)

    run(module, operation)


if __name__ == '__main__':
    main()
