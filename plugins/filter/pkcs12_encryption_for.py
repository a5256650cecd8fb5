# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pkcs12_encryption_for: which PKCS#12 encryption (modern or legacy) an importer on a target can open.

A pure decision from the target's facts, shared by the windows_store and deploy roles:

- Windows before build 10.0.17763 (Windows 10 1809 / Server 2019) cannot open AES/PBES2 PKCS#12 files: legacy.
- macOS (os_family Darwin): `security import` rejects AES/PBES2 PKCS#12 files: legacy.
- Everything else (Linux NSS pk12util, OpenSSL 1.1.1+, current Windows): modern.
- An explicit request (modern or legacy) always wins over the facts.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

ENCRYPTIONS = ('modern', 'legacy')
REQUESTS = ('auto',) + ENCRYPTIONS
# The first Windows build whose PKCS#12 importer reads AES-256/PBES2 files: Windows 10 1809 / Server 2019.
FIRST_WINDOWS_BUILD_WITH_AES = (10, 0, 17763)
_MACOS_FAMILIES = ('darwin', 'macosx', 'macos')
_WINDOWS_VERSION = re.compile(r'^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.\d+)*\s*$')


def _windows_build(distribution_version) -> tuple[int, int, int]:
    text = '' if distribution_version is None else str(distribution_version)
    match = _WINDOWS_VERSION.match(text)
    if not match:
        raise AnsibleFilterError(
            "pkcs12_encryption_for: cannot read the Windows version %r (expected major.minor.build such as "
            "'10.0.17763.0', as in ansible_facts['distribution_version']); gather facts or pass "
            "requested='modern' or 'legacy'" % (text,))
    major, minor, build = match.groups()
    return int(major), int(minor), int(build or 0)


def pkcs12_encryption_for(os_family, distribution_version=None, requested='auto'):
    """Return 'modern' or 'legacy' for a target described by its os_family and distribution_version facts."""
    choice = 'auto' if requested is None else str(requested).strip().lower()
    if choice not in REQUESTS:
        raise AnsibleFilterError('pkcs12_encryption_for: requested must be one of %s, not %r'
                                 % (', '.join(REQUESTS), requested))
    if choice != 'auto':
        return choice
    if not isinstance(os_family, str) or not os_family.strip():
        raise AnsibleFilterError("pkcs12_encryption_for: os_family must be a non-empty string such as "
                                 "ansible_facts['os_family'], not %r" % (os_family,))
    family = os_family.strip().lower()
    if family in _MACOS_FAMILIES:
        return 'legacy'
    if family == 'windows':
        return 'modern' if _windows_build(distribution_version) >= FIRST_WINDOWS_BUILD_WITH_AES else 'legacy'
    return 'modern'


class FilterModule:
    def filters(self):
        return {'pkcs12_encryption_for': pkcs12_encryption_for}
