#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: chromium_policy
short_description: One identity's entries in Chromium's AutoSelectCertificateForUrls managed policy
version_added: 0.2.0
description:
  - Chromium and Google Chrome on Linux pick a client certificate without asking for the URLs of the managed policy
    C(AutoSelectCertificateForUrls). Chromium reads every file of its managed policy folder, but a policy set in two
    files is not merged (the file last in lexicographic order wins), so the entries of every identity of a host must
    live in one value. This module keeps that value in one file (O(path)) and changes only the entries of
    O(identity) in it.
  - Each entry written is the JSON string Chromium expects (an object with C(pattern), the URL, and C(filter), with
    C(ISSUER) and C(SUBJECT) names), plus the key C(certfleet_identity) naming its identity, which Chromium ignores
    (checked with headless Chromium). With
    O(state=present) the identity's entries are replaced by one entry per URL of O(urls); with O(state=absent) (or
    an empty O(urls)) they are removed. Entries of other identities, and entries without the key (added by hand),
    are kept where they are.
  - The SUBJECT filter (from O(subject)) tells identities of the same CA apart, so two identities sharing one NSS
    database each get their own URLs. Only C(CN), C(L), C(O) and C(OU) are compared by Chromium; other attributes of
    O(issuer) and O(subject) are left out, and of a multi-valued attribute the first value is used.
  - Entries that another file of the folder sets for the policy, in a file that sorts before O(path) (ours wins over
    it), are copied into our value with the key C(certfleet_carried_from) naming that file, so they keep working.
    These copies are rebuilt from the other files on every run; an entry removed there, or a file deleted, loses its
    copy at the next run. A file that sorts after O(path) and sets the policy would hide ours; that is an error
    (error code C(shadowed)) naming the file, and nothing is written.
  - When the file would be left with no entry of an identity and none added by hand, the policy key is removed (and
    with it the copies), and so is the file when it holds nothing else.
  - The file is written atomically (a temporary file in the same folder, then a rename), mode 0644. The folder is
    created (0755) when missing. When the module runs as root, it refuses a folder or file that is a symlink or not
    owned by root, and a folder writable by others. An existing file that is not valid JSON is an error naming it;
    nothing is written then.
author:
  - certfleet.pki developers (@certfleet)
attributes:
  check_mode:
    description: Reads the folder and reports what would change, without writing.
    support: full
  diff_mode:
    description: Shows the policy file's JSON before and after.
    support: full
  idempotent:
    description: A second run with the same parameters and the same folder content reports C(changed=false).
    support: full
  platform:
    description: Linux hosts (Chromium's and Google Chrome's managed policy folders under C(/etc)).
    support: full
    platforms: posix
options:
  path:
    description:
      - The policy file, for example C(/etc/chromium/policies/managed/certfleet-client-certificate.json) or
        C(/etc/opt/chrome/policies/managed/certfleet-client-certificate.json). Every identity of the host uses the
        same file.
    type: path
    required: true
  identity:
    description:
      - The identity the entries belong to (as in M(certfleet.pki.client_certificate)). Only entries tagged with it
        are replaced or removed.
    type: str
    required: true
  state:
    description:
      - V(present) makes the identity's entries one per URL of O(urls); V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  urls:
    description:
      - URL patterns (for example C(https://vpn.example.org) or C([*.]example.org)) for which the browser selects
        the identity's certificate. Empty with O(state=present) removes the identity's entries.
    type: list
    elements: str
    default: []
  issuer:
    description:
      - "The issuing CA's name for the ISSUER filter, as a dict (C({CN: Example Client CA, O: Example Org}))."
      - Mutually exclusive with O(issuer_cn).
    type: dict
  issuer_cn:
    description:
      - Short for O(issuer) with only C(CN).
    type: str
  subject:
    description:
      - "The certificate's subject for the SUBJECT filter, as a dict (C({CN: Alice Example})). Needed to tell apart
        identities of the same CA in one NSS database."
      - At least one of O(issuer), O(issuer_cn) and O(subject) is required when O(urls) is not empty.
    type: dict
seealso:
  - module: certfleet.pki.nss_certificate
  - name: AutoSelectCertificateForUrls
    description: Chrome Enterprise policy reference.
    link: https://chromeenterprise.google/policies/#AutoSelectCertificateForUrls
'''

EXAMPLES = r'''
- name: Alice's certificate is selected automatically for the VPN portal and the wiki
  certfleet.pki.chromium_policy:
    path: /etc/chromium/policies/managed/certfleet-client-certificate.json
    identity: alice
    urls: [https://vpn.example.org, https://wiki.example.org]
    issuer_cn: Example Client CA
    subject: {CN: Alice Example, O: Example Org}

- name: Bob, same CA and same NSS database, gets his own URL next to Alice's
  certfleet.pki.chromium_policy:
    path: /etc/chromium/policies/managed/certfleet-client-certificate.json
    identity: bob
    urls: [https://build.example.org]
    issuer_cn: Example Client CA
    subject: {CN: Bob Example}

- name: Alice leaves the host; Bob's entries and entries added by hand stay
  certfleet.pki.chromium_policy:
    path: /etc/chromium/policies/managed/certfleet-client-certificate.json
    identity: alice
    state: absent
'''

RETURN = r'''
path:
  description:
    - The policy file. On failure, the file or folder at fault (for C(shadowed), the file that sorts after ours).
  returned: always
  type: str
identity:
  description: The identity whose entries were managed.
  returned: always
  type: str
state:
  description: The state asked for.
  returned: always
  type: str
entries:
  description: The identity's entries in the file afterwards (JSON strings, as Chromium reads them).
  returned: always
  type: list
  elements: str
  sample:
    - >-
      {"certfleet_identity": "alice", "filter": {"ISSUER": {"CN": "Example Client CA"},
      "SUBJECT": {"CN": "Alice Example"}}, "pattern": "https://vpn.example.org"}
carried_from:
  description: Names of the other files of the folder whose entries are carried in our file.
  returned: always
  type: list
  elements: str
  sample: [00-site.json]
reason_codes:
  description:
    - Why the file was (or would be) changed; empty when nothing changed. C(entries_added), C(entries_removed),
      C(entries_reordered), C(file_created), C(file_removed), C(mode_fixed).
  returned: always
  type: list
  elements: str
reasons:
  description: The same as text.
  returned: always
  type: list
  elements: str
error_code:
  description:
    - On failure, why (playbooks branch on it, not on the message). C(malformed_json), C(malformed_policy) (the
      policy value is not a list), C(shadowed) (a file sorting after ours sets the policy), C(symlink),
      C(not_root_owned), C(unsafe_folder), C(not_a_file), C(not_a_folder), C(write_failed); C(invalid_input) for
      a bad parameter.
  returned: failure
  type: str
  sample: shadowed
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import run
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.chromium_policy import (
    ChromiumPolicyError, ensure_chromium_policy,
)


def main():
    module = AnsibleModule(
        argument_spec={
            'path': {'type': 'path', 'required': True},
            'identity': {'type': 'str', 'required': True},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            'urls': {'type': 'list', 'elements': 'str', 'default': []},
            'issuer': {'type': 'dict'},
            'issuer_cn': {'type': 'str'},
            'subject': {'type': 'dict'},
        },
        mutually_exclusive=[('issuer', 'issuer_cn')],
        supports_check_mode=True,
    )
    params = dict(module.params)
    params['check_mode'] = module.check_mode

    def operation() -> dict:
        try:
            return ensure_chromium_policy(**params)
        except ChromiumPolicyError as exc:
            module.fail_json(msg=exc.message, error_code=exc.code, path=exc.path)
            raise  # not reached: fail_json exits

    run(module, operation)


if __name__ == '__main__':
    main()
