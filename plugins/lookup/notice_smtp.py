# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: notice_smtp
short_description: The smtp settings of a notice, from the playbook's settings and the controller's CERTFLEET_SMTP_*
version_added: 0.1.0
description:
  - Returns the O(certfleet.pki.client_certificate_notice#module:smtp) option for a notice task. Every setting
    given in O(settings) is kept; every other one comes from the controller's C(CERTFLEET_SMTP_*) variable when it
    is set and not empty (C(CERTFLEET_SMTP_HOST) for C(host), and so on), which is what the AWX SMTP credential
    injects where the job runs.
  - Why not the task's C(environment). The notice module runs on the CA host, which may be another machine, so the
    variables must be handed on. Ansible puts a task's environment on the module's command line, and prints that
    line at C(-vvv), so the SMTP password would be in the job output. Through the
    O(certfleet.pki.client_certificate_notice#module:smtp) option the password is C(no_log) and masked everywhere.
  - Reads only the controller's environment; contacts nothing.
options:
  settings:
    description: The settings the playbook gives (for example C(certfleet_notice_smtp)); they win over the
      environment. An empty dict takes everything from the environment.
    type: dict
    default: {}
author:
  - certfleet.pki developers (@certfleet)
'''

EXAMPLES = r'''
- name: The officer is told, with the mail server the AWX credential names
  certfleet.pki.client_certificate_notice:
    ca_path: /var/lib/certfleet/ca
    kind: revocation_complete
    serial: "{{ revoked_serial }}"
    smtp: "{{ lookup('certfleet.pki.notice_smtp', settings=certfleet_notice_smtp | default({})) }}"
  delegate_to: ca.example.org
'''

RETURN = r'''
_raw:
  description: One dict, the smtp settings (setting names as the module's smtp option has them).
  type: list
  elements: dict
'''

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.certfleet.pki.plugins.module_utils.notify.smtp import settings_from_environ


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError('notice_smtp takes no terms, only settings=')
        unknown = sorted(set(kwargs) - {'settings'})
        if unknown:
            raise AnsibleLookupError('notice_smtp takes only settings=, not %s' % ', '.join(unknown))
        given = kwargs.get('settings') or {}
        if not isinstance(given, dict):
            raise AnsibleLookupError('notice_smtp: settings must be a dict (the smtp option), not %s'
                                     % type(given).__name__)
        merged = settings_from_environ(os.environ)
        merged.update({name: value for name, value in given.items() if value is not None and value != ''})
        return [merged]
