#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: client_certificate_notice
short_description: Send the CA's e-mail notices (pickup ready, download, replacement, revocation, expiry)
version_added: 0.2.0
description:
  - Sends one notice by e-mail through SMTP to the registration officer (O(smtp.to)) and, with
    O(copy_to_person), to the person's e-mail addresses in the certificate.
  - V(pickup_ready) carries the retrieval URL of a pickup (O(url), from M(certfleet.pki.client_certificate_pickup))
    and says that the PIN comes through another channel; it never carries the PIN.
    V(download_complete) names the subject DN, serial, time and client of the last download of the certificate;
    V(replacement_complete) the new and the old serial once a renewal is confirmed; V(revocation_complete) the
    serial, reason and time of a revocation. The facts are read from the CA store and its audit log.
  - V(expiry_warning) with O(expiring_within) sends one mail per current, valid certificate expiring within that
    many days (for certificates that no playbook renews; leave those out with O(exclude_identities), or name the
    ones to watch with O(identities)). A certificate is warned once per window (the same O(expiring_within));
    a later run with a shorter window sends a second reminder.
  - Texts are C(string.Template) files (O(templates_dir)); mails can be S/MIME-signed (O(smime_certificate)).
  - Every notice sent is recorded in the CA's audit log (kind, recipients, serial, message id), never a secret.
    A notice that would carry one of O(secrets), the SMTP password or key material is refused and nothing is sent.
  - Does not need the CA key; O(ca_passphrase) is accepted (for C(module_defaults)) but not used.
author:
  - certfleet.pki developers (@certfleet)
extends_documentation_fragment:
  - certfleet.pki.ca
  - certfleet.pki.ca.ATTRIBUTES
attributes:
  check_mode:
    description: Composes the notices and reports recipients and subjects; connects to no server, sends nothing.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
  idempotent:
    description:
      - V(expiry_warning) is idempotent per certificate and window. The other kinds send a mail on every run, as
        a notice is an event.
    support: partial
options:
  kind:
    description: Which notice to send.
    type: str
    required: true
    choices: [pickup_ready, download_complete, replacement_complete, revocation_complete, expiry_warning]
  identity:
    description:
      - The identity whose current certificate the notice is about (for V(revocation_complete) its last revoked
        one). One of O(identity), O(serial) or O(pickup_id) is needed unless O(kind=expiry_warning).
    type: str
  serial:
    description: The serial number of the certificate the notice is about.
    type: str
  pickup_id:
    description: The pickup the notice is about (V(pickup_ready), V(download_complete), V(replacement_complete)).
    type: str
  url:
    description:
      - The retrieval URL of the pickup, for V(pickup_ready) (the RV(certfleet.pki.client_certificate_pickup#module:url)
        result; the CA keeps only a hash of its secret). Must belong to the pickup.
    type: str
  expiring_within:
    description: For V(expiry_warning), required. Warn about certificates expiring within this many days.
    type: int
  identities:
    description: For V(expiry_warning), only these identities are watched.
    type: list
    elements: str
  exclude_identities:
    description: For V(expiry_warning), identities never warned about (their playbooks renew them).
    type: list
    elements: str
    default: []
  copy_to_person:
    description: Also send to the e-mail addresses of the certificate (its C(email) SANs and C(emailAddress)).
    type: bool
    default: false
  templates_dir:
    description:
      - A folder with C(<kind>.txt) files overriding the default text of that kind. A template is a
        C(Subject:) line, an empty line and the body, with C($placeholders) of C(string.Template).
      - "Placeholders: C($identity), C($subject) (the DN), C($serial), C($issuer), C($time), C($client), C($url),
        C($window_ends_at), C($format), C($old_serial), C($confirmed_by), C($reason), C($not_after),
        C($days_left), C($expiring_within). Any other is refused."
    type: path
  smime_certificate:
    description:
      - Sign every mail (S/MIME, C(multipart/signed), SHA-256) with this certificate. A PEM file; certificates
        after the first (its chain) are included in the signature.
    type: path
  smime_key:
    description: The PEM private key of O(smime_certificate). Required with it.
    type: path
  smime_key_passphrase:
    description: The passphrase of O(smime_key), if it is encrypted.
    type: str
  secrets:
    description:
      - Strings that must never appear in a notice (a PIN, a password). A notice that contains one is refused and
        nothing is sent. The SMTP password is always one of them.
    type: list
    elements: str
    default: []
  smtp:
    description:
      - How to reach the mail server. Each setting falls back to an environment variable, so the whole option
        may be left out where an AWX credential injects them.
    type: dict
    suboptions:
      host:
        description: The mail server. Environment C(CERTFLEET_SMTP_HOST).
        type: str
      port:
        description:
          - Environment C(CERTFLEET_SMTP_PORT). Default 587 for V(starttls), 465 for V(tls), 25 for V(none).
        type: int
      security:
        description:
          - V(starttls) upgrades the connection and fails if the server does not offer it; V(tls) connects with
            TLS (SMTPS); V(none) sends in clear (a password is then refused unless the server is on localhost).
          - Environment C(CERTFLEET_SMTP_SECURITY); default V(starttls).
        type: str
        choices: [none, starttls, tls]
      username:
        description: Log in with this user. Environment C(CERTFLEET_SMTP_USERNAME).
        type: str
      password:
        description: The password of O(smtp.username). Environment C(CERTFLEET_SMTP_PASSWORD).
        type: str
      from:
        description: The sender address. Environment C(CERTFLEET_SMTP_FROM).
        type: str
      to:
        description:
          - The officer's addresses. Environment C(CERTFLEET_SMTP_TO) (comma-separated).
        type: list
        elements: str
      ca_file:
        description:
          - A PEM file with the CA certificates that the server's certificate must chain to (default the system's).
          - Environment C(CERTFLEET_SMTP_CA_FILE).
        type: path
      validate_certs:
        description: Verify the server's certificate and name. Only turn this off for a test server.
        type: bool
        default: true
      timeout:
        description: Seconds to wait for the server. Environment C(CERTFLEET_SMTP_TIMEOUT).
        type: int
        default: 30
notes:
  - Failures name the setting to look at in RV(field) (for example C(smtp.password) when the server refuses the
    login, C(smtp.ca_file) when its certificate does not verify); nothing is recorded in the audit log then.
  - The RV(certfleet.pki.client_certificate_pickup#module:pin) must go through another channel than the URL.
seealso:
  - module: certfleet.pki.client_certificate_pickup
  - module: certfleet.pki.client_certificate_revoke
'''

EXAMPLES = r'''
- name: Alice gets her retrieval URL by mail (the PIN goes by phone)
  certfleet.pki.client_certificate_notice:
    ca_path: /var/lib/certfleet/ca
    kind: pickup_ready
    pickup_id: "{{ alice_pickup.pickup_id }}"
    url: "{{ alice_pickup.url }}"
    copy_to_person: true
    secrets: ["{{ alice_pickup.pin }}"]
    smtp:
      host: mail.example.org
      from: pki@example.org
      to: [registration-officer@example.org]
  delegate_to: ca.example.org
  no_log: true  # the task's arguments hold the URL secret and the PIN

- name: The officer learns that Bob's old certificate is revoked
  certfleet.pki.client_certificate_notice:
    ca_path: /var/lib/certfleet/ca
    kind: revocation_complete
    serial: 4F2A9C0D31E7
    # no smtp: host, credentials and addresses come from CERTFLEET_SMTP_* (the AWX credential type)
  delegate_to: ca.example.org

- name: Certificates that no playbook renews are announced 30 days before they expire, signed
  certfleet.pki.client_certificate_notice:
    ca_path: /var/lib/certfleet/ca
    kind: expiry_warning
    expiring_within: 30
    exclude_identities: [web-kiosk-01, web-kiosk-02]
    smime_certificate: /etc/certfleet/notices.pem
    smime_key: /etc/certfleet/notices.key
    smtp:
      host: mail.example.org
      port: 587
      security: starttls
      username: certfleet
      password: "{{ certfleet_smtp_password }}"
      from: pki@example.org
      to: [registration-officer@example.org]
  delegate_to: ca.example.org
'''

RETURN = r'''
changed:
  description: Whether a notice was sent (or, in check mode, would be).
  returned: always
  type: bool
notices:
  description: The notices sent (or composed in check mode). Never a body.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The kind of notice.
      type: str
    recipients:
      description: Where it went.
      type: list
      elements: str
    subject:
      description: The mail's subject line.
      type: str
      sample: "Certificate picked up: CN=Alice Example,O=Example Org (serial 4F2A9C0D31E7)"
    identity:
      description: The identity of the certificate.
      type: str
    serial:
      description: The serial number of the certificate.
      type: str
    message_id:
      description: The mail's Message-ID (also in the audit log).
      type: str
    sent:
      description: C(true) when sent; C(false) in check mode.
      type: bool
already_warned:
  description: For V(expiry_warning), the certificates in the window that were warned about before (not re-sent).
  returned: always
  type: list
  elements: dict
  contains:
    identity:
      description: The identity.
      type: str
    serial:
      description: The serial number.
      type: str
field:
  description: On failure, the option or setting to look at (for example C(smtp.password)).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import (
    ca_argument_spec, require_cryptography, run,
)
from ansible_collections.certfleet.pki.plugins.module_utils.notify.service import send_notice
from ansible_collections.certfleet.pki.plugins.module_utils.notify.smtp import SECURITY, env_name
from ansible_collections.certfleet.pki.plugins.module_utils.notify.templates import KINDS


def _from_env(setting: str, **spec) -> dict:
    return dict(spec, fallback=(env_fallback, [env_name(setting)]))


SMTP_SPEC = {
    'host': _from_env('host', type='str'),
    'port': _from_env('port', type='int'),
    'security': _from_env('security', type='str', choices=list(SECURITY)),
    'username': _from_env('username', type='str'),
    'password': _from_env('password', type='str', no_log=True),
    'from': _from_env('from', type='str'),
    'to': _from_env('to', type='list', elements='str'),
    'ca_file': _from_env('ca_file', type='path'),
    'validate_certs': {'type': 'bool', 'default': True},
    'timeout': _from_env('timeout', type='int', default=30),
}


def main():
    module = AnsibleModule(
        argument_spec=ca_argument_spec(
            kind={'type': 'str', 'required': True, 'choices': list(KINDS)},
            identity={'type': 'str'},
            serial={'type': 'str'},
            pickup_id={'type': 'str'},
            url={'type': 'str', 'no_log': True},  # it carries the pickup secret
            expiring_within={'type': 'int'},
            identities={'type': 'list', 'elements': 'str'},
            exclude_identities={'type': 'list', 'elements': 'str', 'default': []},
            copy_to_person={'type': 'bool', 'default': False},
            templates_dir={'type': 'path'},
            smime_certificate={'type': 'path'},
            smime_key={'type': 'path', 'no_log': False},
            smime_key_passphrase={'type': 'str', 'no_log': True},
            secrets={'type': 'list', 'elements': 'str', 'default': [], 'no_log': True},
            smtp={'type': 'dict', 'options': SMTP_SPEC, 'apply_defaults': True},
        ),
        required_if=[('kind', 'expiry_warning', ('expiring_within',))],
        required_together=[('smime_certificate', 'smime_key')],
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params

    def operation():
        with ManagedCA(params['ca_path'], params['ca_passphrase'], unlock=False, store_url=params['ca_store']) as ca:
            return send_notice(ca, params, check_mode=module.check_mode)

    run(module, operation)


if __name__ == '__main__':
    main()
