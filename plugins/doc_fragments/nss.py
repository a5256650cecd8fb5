# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of the modules that work on an NSS database (Firefox profiles, Chromium's nssdb).
    DOCUMENTATION = r'''
options:
  db:
    description:
      - The NSS database folder on the target, holding C(cert9.db) and C(key4.db) (the SQLite C(sql:) format).
      - A Firefox profile folder (see M(certfleet.pki.firefox_profile_info)), Chromium's
        C($HOME/.local/share/pki/nssdb) or the older C(~/.pki/nssdb). A C(sql:) prefix is accepted and ignored;
        the legacy C(cert8.db) format is not supported.
    type: path
    required: true
    aliases: [profile, nssdb]
  db_password:
    description:
      - The database's token password (Firefox calls it the primary password).
      - Databases without one need nothing here. Handed to C(certutil) and C(pk12util) through a C(0600) file that
        is removed afterwards, never on a command line.
    type: str
  owner:
    description:
      - The user (name or numeric uid) whose rights every file access and every C(certutil)/C(pk12util) call uses
        when the module runs as root. A symlink or a C(profiles.ini) entry planted in a home then leads only where
        that user could write anyway, and a place the user may not write is refused with a message naming host,
        user and path.
      - Default, the owner of the first folder on the way down to O(db) that root does not own; when root owns
        every folder, nothing is switched. Give it when the path came from a file that user controls, such as a
        profile found through C(profiles.ini) (M(certfleet.pki.firefox_profile_info) returns it as
        C(owner) of each profile).
      - Files in an NSS database folder that are symbolic links are always refused; NSS never makes them.
    type: str
requirements:
  - C(certutil) and C(pk12util) on the target (Debian/Ubuntu C(libnss3-tools), Fedora/RHEL C(nss-tools),
    macOS Homebrew C(nss))
  - cryptography >= 42.0 on the target
notes:
  - The C(sql:) database is an SQLite file that NSS opens in shared mode, so the modules work while Firefox or
    Chromium is running; the browser sees the change at once or after a restart, depending on the version.
'''
