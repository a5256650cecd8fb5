#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: firefox_profile_info
short_description: Find the Firefox profiles of users from profiles.ini and installs.ini
version_added: 0.1.0
description:
  - Reads C(profiles.ini) (and C(installs.ini)) of every Firefox installation in a user's home and lists the
    profiles, with the folder to give as O(certfleet.pki.nss_certificate#module:db).
  - Looks in these places below the home folder. Linux C(.mozilla/firefox) (native), C(.config/mozilla/firefox)
    (xdg, newer Firefox), C(snap/firefox/common/.mozilla/firefox) (snap),
    C(.var/app/org.mozilla.firefox/.mozilla/firefox) and C(.var/app/org.mozilla.firefox_esr/.mozilla/firefox)
    (flatpak). macOS C(Library/Application Support/Firefox). Windows C(AppData\Roaming\Mozilla\Firefox).
  - The default profile is the one an installation's C(installs.ini) (or C([Install...]) section) names; for files
    without one, the profile marked C(Default=1).
  - Without O(users), O(all_users) or O(home) it lists the profiles of the user the module runs as.
  - Never writes anything. A profile that Firefox has not opened yet has C(has_nss_db=false); create its database
    with M(certfleet.pki.nss_certificate) and O(certfleet.pki.nss_certificate#module:create_db=true).
author:
  - certfleet.pki developers (@certfleet)
attributes:
  check_mode:
    description: Runs normally in check mode; it only reads.
    support: full
  diff_mode:
    description: Changes nothing, so there is nothing to diff.
    support: N/A
  idempotent:
    description: Always reports C(changed=false).
    support: full
options:
  users:
    description:
      - Names of the users whose profiles to list. Their home folders come from the user database (C(passwd)).
      - A user that does not exist on the host is an error naming O(users); nothing is listed then.
    type: list
    elements: str
    default: []
  all_users:
    description:
      - List the profiles of every login user with an existing home folder (uid 1000 and above on Linux, 500 and
        above on macOS, and root).
      - Cannot be combined with O(users) or O(home).
    type: bool
    default: false
  home:
    description:
      - Look in this folder instead of a user's home, for example a home folder mounted from another machine or a
        test home. With one name in O(users) that name is reported as C(user) (it need not exist on the host).
      - A folder that does not exist is an error naming O(home).
    type: path
  system:
    description:
      - Which operating system's layout to look for. Defaults to the system the module runs on.
      - V(Windows) reads a Windows home folder mounted or copied to this host (Ansible runs PowerShell modules,
        not this one, on Windows hosts).
    type: str
    choices: [Linux, Darwin, Windows]
seealso:
  - module: certfleet.pki.nss_certificate
  - module: certfleet.pki.nss_certificate_info
'''

EXAMPLES = r'''
- name: The Firefox profiles of alice and bob
  certfleet.pki.firefox_profile_info:
    users: [alice, bob]
  register: firefox

- name: Every profile of theirs holds the client certificate
  certfleet.pki.nss_certificate:
    db: "{{ item.path }}"
    create_db: true
    pkcs12_path: "/tmp/{{ item.user }}.p12"
    pkcs12_password: "{{ vault_p12_passwords[item.user] }}"
    ca_certificate: /etc/certfleet/client-ca.pem
  loop: "{{ firefox.profiles | selectattr('exists') | list }}"
  loop_control:
    label: "{{ item.user }} {{ item.name }}"
  become: true
  become_user: "{{ item.user }}"

- name: The profiles of every user of a shared workstation
  certfleet.pki.firefox_profile_info:
    all_users: true
  register: everyone
'''

RETURN = r'''
system:
  description: The layout that was looked for.
  returned: always
  type: str
  sample: Linux
profiles:
  description: Every profile found, in the order of the users and installations.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: The user whose home it is (C(null) when only O(home) was given).
      type: str
    home:
      description: The home folder that was searched.
      type: str
    owner:
      description:
        - The user whose rights apply to this profile (the home's user, or the owner of O(home)); give it as
          O(certfleet.pki.nss_certificate#module:owner) so that a path planted in C(profiles.ini) is opened with
          that user's rights only. C(null) when root owns the home.
        - When the module runs as root, the home's C(profiles.ini) and C(installs.ini) are also read as this user.
      type: str
    name:
      description: The profile's name in C(profiles.ini), such as C(default-release).
      type: str
    path:
      description: The profile folder, the O(certfleet.pki.nss_certificate#module:db).
      type: str
    is_relative:
      description: Whether C(profiles.ini) gives the path relative to its own folder.
      type: bool
    default:
      description: Whether it is the installation's default profile.
      type: bool
    installation:
      description: C(native), C(xdg), C(snap), C(flatpak) or C(flatpak-esr).
      type: str
    root:
      description: The folder holding C(profiles.ini).
      type: str
    exists:
      description: Whether the profile folder exists.
      type: bool
    has_nss_db:
      description: Whether the profile holds an NSS database (C(cert9.db)).
      type: bool
    has_legacy_nss_db:
      description: Whether it holds the legacy C(cert8.db) format only Firefox before version 58 used.
      type: bool
    running:
      description: Whether Firefox seems to have the profile open, from the C(lock) symlink Firefox on Linux keeps
        while it runs (a crash can leave it behind). Certificates can be imported while it runs.
      type: bool
users:
  description: The users that were searched.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: User name (C(null) when only O(home) was given).
      type: str
    home:
      description: Home folder.
      type: str
    installations:
      description: Kinds of Firefox installations found (C(native), C(snap), ...).
      type: list
      elements: str
    profiles:
      description: Number of profiles found.
      type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import run
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.firefox import firefox_profile_info


def main():
    module = AnsibleModule(
        argument_spec={
            'users': {'type': 'list', 'elements': 'str', 'default': []},
            'all_users': {'type': 'bool', 'default': False},
            'home': {'type': 'path'},
            'system': {'type': 'str', 'choices': ['Linux', 'Darwin', 'Windows']},
        },
        supports_check_mode=True,
    )
    params = module.params
    run(module, lambda: firefox_profile_info(users=params['users'], all_users=params['all_users'],
                                             home=params['home'], system=params['system']))


if __name__ == '__main__':
    main()
