#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_requests
short_description: Carry out a TSV or CSV file of issue, renew and revoke requests in one batch
version_added: 0.1.0
description:
  - Reads a request file with one line per certificate, as a department sends it to its registration officer,
    validates every line against the CA's policy and its current state, and then carries out all of them in one
    process and one store transaction. Key generation, signing and PKCS#12 packing run on every core.
  - "The file is UTF-8 without a byte-order mark, tab-separated (C(.tsv)) or comma-separated (C(.csv); C(;) is
    accepted when the header uses it). The first line that is not blank and does not start with C(#) is the
    header. Column names are case-insensitive; spaces and hyphens count as underscores."
  - "Columns: C(action) (C(issue), C(renew) or C(revoke)), C(identity), C(CN), C(email), C(O), C(OU), C(L),
    C(ST), C(C), C(profile), C(valid_days) (alias C(validity)), C(key_type), C(reason) (revocation reason) and
    C(serial). C(action) and C(identity) are required in the header; the others may be left out. Every line has as
    many fields as the header, empty ones included: a missing separator would shift values into other columns, so
    it is reported, not guessed."
  - "C(issue): a new certificate for an identity that has none (or whose certificate expired). C(CN) is required.
    An identity that already holds a certificate with the same subject, e-mail, profile and key type is reported
    as C(unchanged); one that holds a different certificate is an error that points to C(renew)."
  - "C(renew): a new certificate and key for an identity that holds one. Empty columns keep the current
    certificate's values, so a line with just the identity renews as is, and a line with a new C(email) changes
    the address. C(serial), when given, must be the current certificate. The old certificate stays valid and
    its serial goes to the hand-back file C(revoke-old.tsv) (same format as the input), to be run as a revoke
    request once the users confirm their new certificates work."
  - "C(revoke): C(serial) revokes that certificate (C(identity), when given, must match); C(identity) alone
    revokes every valid certificate of the identity. C(reason) is a CRL reason (C(key_compromise),
    C(affiliation_changed), C(superseded), C(cessation_of_operation), ...; C(keyCompromise) spelling is
    accepted), C(unspecified) when empty. Publish the CRL afterwards with M(certfleet.pki.crl)."
  - Every line is checked before anything happens. With O(on_error=abort) (the default) one invalid line stops
    the whole file and nothing is written; the error lists every invalid line with its number, the column and
    the reason. With O(on_error=skip) the valid lines are carried out and the invalid ones reported.
  - "A run that changes something writes one new folder under O(dest), named after the request file and the UTC
    time (for example C(dept-2026-11-21/sales-20261121T093000Z)): C(results.tsv) (line, identity, action, result,
    new serial, old serial, message, file), C(revoke-old.tsv) when lines were renewed, and the deliveries:
    with O(delivery=individual) one C(<identity>.p12) per certificate and C(passwords.tsv); with
    O(delivery=bundle) one ZIP archive holding the C(.p12) files and C(passwords.tsv), for a department
    administrator. The folder is built under a hidden name and renamed into place when the store transaction
    has committed, so a failed run leaves no folder and no certificate. Folders are 0700 and files 0600."
  - Each PKCS#12 file has its own random password of 148 bits (six groups of five letters and digits). Because
    such a password cannot be guessed, the files use 2048 PBKDF2 rounds (OpenSSL's default) rather than the
    600,000 that M(certfleet.pki.client_certificate_export) uses for passwords people choose; set O(iterations)
    to change it.
  - Running the same file again changes nothing. A line already carried out (same content) is recognised and
    reported as C(unchanged) with the serial it produced, even when the file was edited around it (for example
    after fixing the lines a V(skip) run reported). A renew line renews again only once the certificate it
    produced enters its renewal window (O(renew_before)).
  - The CA host keeps each new key, encrypted, for O(key_retention) days, so a lost delivery can be exported
    again with M(certfleet.pki.client_certificate_export).
  - The module result and the audit trail never contain a key, a PKCS#12 file or a password.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Validates every line and reports what each would do (C(would_be_issued), ...); nothing is
      generated or written.
    support: full
  diff_mode:
    description: No diff; the per-line RV(rows) tell what changed.
    support: none
  idempotent:
    description:
      - Lines already carried out are recognised by their content and reported as C(unchanged); a run
        with nothing to do reports C(changed=false) and writes nothing.
      - A renew line renews again once the certificate it produced enters O(renew_before), so the same file can
        change something again later.
    support: partial
options:
  src:
    description:
      - The request file on the CA host (copy it there first when the CA runs elsewhere).
    type: path
    required: true
  format:
    description:
      - V(tsv) or V(csv). V(auto) decides by the file name (C(.tsv), C(.tab), C(.csv)), then by the header line.
      - The output files use the same format.
    type: str
    choices: [auto, tsv, csv]
    default: auto
  dest:
    description:
      - Folder that receives one output folder per run. Created with mode 0700 when missing (its parent must
        exist).
    type: path
    required: true
  on_error:
    description:
      - V(abort) nothing happens when any line is invalid; the task fails and lists them all.
      - V(skip) valid lines are carried out; invalid ones are reported in RV(rows), C(results.tsv) and a warning.
    type: str
    choices: [abort, skip]
    default: abort
  delivery:
    description:
      - V(individual) one PKCS#12 file per identity and one C(passwords.tsv) with each file's password.
      - V(bundle) one ZIP archive of all PKCS#12 files and the passwords file. The archive holds the passwords
        and the keys; hand it over as you would the passwords.
      - V(pickup) no PKCS#12 file at all - each issued certificate gets a pickup (as
        M(certfleet.pki.client_certificate_pickup) makes it, with O(pickup)), its key held by the CA until the
        person downloads it from the pickup portal with the PIN. The retrieval URLs go to C(pickups.tsv)
        (identity, serial, email, url) and the PINs to C(pickup-pins.tsv) (identity, serial, pin), two C(0600)
        files so that each travels by its own channel. A pickup missing after a failure is made later with
        M(certfleet.pki.client_certificate_pickup).
    type: str
    choices: [individual, bundle, pickup]
    default: individual
  pickup:
    description:
      - The pickups of O(delivery=pickup); checked before any line is carried out. Ignored otherwise.
    type: dict
    suboptions:
      base_url:
        description: The address of the pickup portal; C(https) (C(http) only for localhost). Required.
        type: str
      format:
        description: What the person downloads.
        type: str
        choices: [pkcs12-modern, pkcs12-legacy, mobileconfig]
        default: pkcs12-modern
      lock_after_first_days:
        description: Days after the first download after which the pickup closes.
        type: int
        default: 3
      expire_after_issue_days:
        description: Days after issuance after which the pickup closes (never beyond the key's retention).
        type: int
        default: 30
      max_downloads:
        description: Downloads allowed.
        type: int
        default: 1
      max_attempts:
        description: Wrong PINs after which the pickup locks.
        type: int
        default: 5
  encryption:
    description:
      - V(modern) AES-256-CBC with PBKDF2-HMAC-SHA256 and a SHA-256 MAC (Windows 10 1709 and later, macOS,
        iOS, Firefox, OpenSSL 1.1.1 and later).
      - V(legacy) 3DES with a SHA-1 MAC, for old importers (Windows 7, Server 2016 and earlier, old Android).
    type: str
    choices: [modern, legacy]
    default: modern
  iterations:
    description:
      - PBKDF2 rounds of the PKCS#12 files; at least 1000. Default 2048 (see the description).
    type: int
  profile:
    description: Profile of C(issue) lines whose C(profile) column is empty.
    type: str
    default: client
  key_type:
    description: Key type of C(issue) lines whose C(key_type) column is empty.
    type: str
    choices: [rsa2048, rsa3072, rsa4096, ec-p256, ec-p384]
    default: rsa2048
  valid_days:
    description: Validity of new certificates whose C(valid_days) column is empty.
    type: int
    default: 365
  renew_before:
    description:
      - A renew line already carried out renews again once its certificate is this close to expiry (C(30d), or
        a percentage of the lifetime such as C(20%)).
    type: str
    default: 30d
  key_retention:
    description: Days the CA host keeps each new key (encrypted) for a later export.
    type: int
    default: 30
  workers:
    description:
      - Processes for key generation, signing and PKCS#12 packing. Default, one per core this process may use.
    type: int
  name:
    description:
      - Name of the output folder and bundle, before the time stamp. Default, the request file's name without
        its extension.
    type: str
'''

EXAMPLES = r'''
- name: Carry out the sales department's requests; one PKCS#12 per person
  certfleet.pki.client_certificate_requests:
    ca_path: /srv/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    src: /srv/certfleet/incoming/sales.tsv
    dest: /srv/certfleet/outgoing
  register: batch

- name: Show each line's outcome
  ansible.builtin.debug:
    msg: "{{ batch.rows | map(attribute='result') | list }}"

- name: One archive for the department administrator, old importers, invalid lines skipped
  certfleet.pki.client_certificate_requests:
    ca_path: /srv/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    src: /srv/certfleet/incoming/plant.csv
    dest: /srv/certfleet/outgoing
    delivery: bundle
    encryption: legacy
    on_error: skip

- name: Phones and laptops Ansible cannot reach - each person picks the certificate up with a URL and a PIN
  certfleet.pki.client_certificate_requests:
    ca_path: /srv/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    src: /srv/certfleet/incoming/field-staff.tsv
    dest: /srv/certfleet/outgoing
    delivery: pickup
    pickup:
      base_url: https://pki.example.org
      format: mobileconfig
      expire_after_issue_days: 14

- name: Revoke the old certificates once the users confirmed (the hand-back file of the renewal run)
  certfleet.pki.client_certificate_requests:
    ca_path: /srv/certfleet/ca
    ca_passphrase: "{{ vault_ca_passphrase }}"
    src: "{{ batch.handback_file }}"
    dest: /srv/certfleet/outgoing
  when: batch.handback_file
'''

RETURN = r'''
rows:
  description: One entry per request line, in file order. Never holds a password.
  returned: always
  type: list
  elements: dict
  contains:
    row:
      description: Line number in the file (the header is usually line 1).
      type: int
    identity:
      description: The identity of the line.
      type: str
    action:
      description: C(issue), C(renew) or C(revoke) as requested (null when the action is invalid).
      type: str
    result:
      description: C(issued), C(renewed), C(revoked), C(unchanged) or C(invalid); in check mode
        C(would_be_issued), C(would_be_renewed) or C(would_be_revoked).
      type: str
    serial:
      description: The new certificate's serial (issue, renew), or the serial the line concerns when unchanged.
      type: str
    previous_serial:
      description: The certificate a renewal replaced, or the serial(s) revoked (space-separated).
      type: str
    message:
      description: What was done, or for an invalid line the column and the reason.
      type: str
    file:
      description: Path of the line's PKCS#12 file with O(delivery=individual).
      type: str
  sample:
    - {row: 2, identity: alice, action: issue, result: issued, serial: 5F3A09C2, previous_serial: null,
       message: no valid certificate, file: /srv/certfleet/outgoing/sales-20261121T093000Z/alice.p12}
counts:
  description: How many lines were issued, renewed, revoked, unchanged and invalid.
  returned: always
  type: dict
  sample: {issued: 998, renewed: 0, revoked: 0, unchanged: 0, invalid: 2}
output_dir:
  description: The folder this run wrote; null when nothing changed or in check mode.
  returned: always
  type: str
results_file:
  description: C(results.tsv) (or C(.csv)) in RV(output_dir).
  returned: always
  type: str
passwords_file:
  description: The passwords file with O(delivery=individual) when certificates were issued.
  returned: always
  type: str
bundle_file:
  description: The ZIP archive with O(delivery=bundle) when certificates were issued.
  returned: always
  type: str
handback_file:
  description: The revocation request for the certificates that renew lines replaced, in the input's format.
  returned: always
  type: str
pickups_file:
  description: With O(delivery=pickup), C(pickups.tsv) (tab-separated whatever the request file) - identity,
    serial, email and retrieval URL.
  returned: always
  type: str
pins_file:
  description: With O(delivery=pickup), C(pickup-pins.tsv) (tab-separated) - identity, serial and PIN; send each
    PIN by another channel than its URL.
  returned: always
  type: str
src_sha256:
  description: SHA-256 of the request file, as recorded in the audit trail.
  returned: always
  type: str
format:
  description: V(tsv) or V(csv), as read.
  returned: always
  type: str
delivery:
  description: The delivery kind.
  returned: always
  type: str
encryption:
  description: The PKCS#12 encryption.
  returned: always
  type: str
iterations:
  description: The PBKDF2 rounds of the PKCS#12 files.
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkInputError, BulkRequest
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import KEY_TYPES
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import (
    KEY_RETENTION_DAYS, KEY_TYPE, RENEW_BEFORE, VALID_DAYS,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            src={'type': 'path', 'required': True},
            format={'type': 'str', 'default': 'auto', 'choices': ['auto', 'tsv', 'csv']},
            dest={'type': 'path', 'required': True},
            on_error={'type': 'str', 'default': 'abort', 'choices': ['abort', 'skip']},
            delivery={'type': 'str', 'default': 'individual', 'choices': ['individual', 'bundle', 'pickup']},
            pickup={'type': 'dict', 'options': {
                'base_url': {'type': 'str'},
                'format': {'type': 'str', 'default': 'pkcs12-modern',
                           'choices': ['pkcs12-modern', 'pkcs12-legacy', 'mobileconfig']},
                'lock_after_first_days': {'type': 'int', 'default': 3},
                'expire_after_issue_days': {'type': 'int', 'default': 30},
                'max_downloads': {'type': 'int', 'default': 1},
                'max_attempts': {'type': 'int', 'default': 5},
            }},
            encryption={'type': 'str', 'default': 'modern', 'choices': ['modern', 'legacy']},
            iterations={'type': 'int'},
            profile={'type': 'str', 'default': 'client'},
            key_type={'type': 'str', 'default': KEY_TYPE, 'choices': list(KEY_TYPES)},
            valid_days={'type': 'int', 'default': VALID_DAYS},
            renew_before={'type': 'str', 'default': RENEW_BEFORE},
            key_retention={'type': 'int', 'default': KEY_RETENTION_DAYS, 'no_log': False},
            workers={'type': 'int'},
            name={'type': 'str'},
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], store_url=params['ca_store']) as ca:
            request = BulkRequest(
                ca, src=params['src'], format=params['format'], on_error=params['on_error'],
                delivery=params['delivery'], dest=params['dest'], encryption=params['encryption'],
                iterations=params['iterations'],
                defaults={'profile': params['profile'], 'key_type': params['key_type'],
                          'valid_days': params['valid_days']},
                renew_before=params['renew_before'], key_retention=params['key_retention'],
                workers=params['workers'], name=params['name'], pickup=params['pickup'])
            try:
                return request.execute(check_mode=module.check_mode)
            except BulkInputError as exc:
                module.fail_json(msg=exc.message, field=exc.field, rows=exc.rows,
                                 counts=request.counts(), src=params['src'])

    run(module, operation)


if __name__ == '__main__':
    main()
