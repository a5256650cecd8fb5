#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: firefox_user_prefs
short_description: Keep certfleet's preferences in a Firefox profile's user.js, safely inside users' homes
version_added: 0.1.0
description:
  - Keeps one marked block of C(user_pref(...)) lines in the C(user.js) of a Firefox profile, for example
    C(security.default_personal_cert) so that Firefox selects the client certificate without asking. Lines outside
    the block are left as they are.
  - Made for root working in other people's homes. When the module runs as root, it works with the rights of
    the profile's owner (O(owner), or the owner of the first folder on the way to O(profile) that root does not
    own), so the kernel applies that user's rights to every path. A C(user.js) that is a symbolic link is refused
    and left as it is, and so is a profile the user may not write.
  - The new C(user.js) is written by that user to a temporary file in the profile folder and renamed over the
    old one, keeping its mode (C(0600) for a new file).
options:
  profile:
    description: The Firefox profile folder (see M(certfleet.pki.firefox_profile_info)).
    type: path
    required: true
  owner:
    description:
      - The user (name or numeric uid) whose rights are used when the module runs as root. Give the C(owner) that
        M(certfleet.pki.firefox_profile_info) returns for the profile, since C(profiles.ini) is the user's file.
      - Default, the owner of the first folder on the way to O(profile) that root does not own.
    type: str
  prefs:
    description:
      - Preference names and values. Strings, booleans and integers are written as Firefox expects them.
      - Required with O(state=present).
    type: dict
    default: {}
  state:
    description: V(present) keeps the block with exactly O(prefs); V(absent) removes the block.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    description: Reads C(user.js) and reports whether the block would change, without writing.
    support: full
  diff_mode:
    description: Shows C(user.js) before and after.
    support: full
  idempotent:
    description: A second run with the same preferences reports C(changed=false).
    support: full
  platform:
    description: Linux and macOS (POSIX rights; the switch to the profile's owner needs root).
    support: full
    platforms: posix
author:
  - certfleet.pki developers (@certfleet)
'''

EXAMPLES = r'''
- name: Firefox selects the client certificate automatically in each of alice's profiles
  certfleet.pki.firefox_user_prefs:
    profile: "{{ item.path }}"
    owner: "{{ item.owner }}"
    prefs:
      security.default_personal_cert: Select Automatically
  loop: "{{ alice_profiles.profiles }}"
  loop_control:
    label: "{{ item.path }}"

- name: The selection is Firefox's own again
  certfleet.pki.firefox_user_prefs:
    profile: /home/alice/.mozilla/firefox/k2x9w1a7.default-release
    state: absent
'''

RETURN = r'''
path:
  description: The C(user.js) that was kept.
  returned: always
  type: str
  sample: /home/alice/.mozilla/firefox/k2x9w1a7.default-release/user.js
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import run
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import acting_owner, run_as
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.firefox import ensure_user_prefs


def main():
    module = AnsibleModule(
        argument_spec={
            'profile': {'type': 'path', 'required': True},
            'owner': {'type': 'str'},
            'prefs': {'type': 'dict', 'default': {}},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
        },
        supports_check_mode=True,
    )
    params = module.params
    run(module, lambda: run_as(acting_owner(params['profile'], params['owner']), ensure_user_prefs,
                               profile=params['profile'], prefs=params['prefs'], state=params['state'],
                               check_mode=module.check_mode))


if __name__ == '__main__':
    main()
