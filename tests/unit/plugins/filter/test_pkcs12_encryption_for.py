# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PKCS#12 encryption decision: a table of targets, explicit overrides, and clear errors."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.certfleet.pki.plugins.filter.pkcs12_encryption_for import (
    FilterModule, pkcs12_encryption_for,
)


@pytest.mark.parametrize(('os_family', 'version', 'expected'), [
    # Windows: AES/PBES2 PKCS#12 opens from build 10.0.17763 (1809 / Server 2019) on.
    ('Windows', '6.3.9600.0', 'legacy'),         # Windows 8.1 / Server 2012 R2
    ('Windows', '6.1.7601.65536', 'legacy'),     # Windows 7 SP1 / Server 2008 R2
    ('Windows', '10.0.10240.0', 'legacy'),       # Windows 10 1507
    ('Windows', '10.0.14393.0', 'legacy'),       # Server 2016 / 1607
    ('Windows', '10.0.14393', 'legacy'),         # without the revision part
    ('Windows', '10.0.17134.0', 'legacy'),       # 1803, the last build before
    ('Windows', '10.0.17762.9999', 'legacy'),    # one build short
    ('Windows', '10.0.17763.0', 'modern'),       # Server 2019 / 1809
    ('Windows', '10.0.17763', 'modern'),
    ('Windows', '10.0.17763.6414', 'modern'),
    ('Windows', '10.0.19045.5247', 'modern'),    # Windows 10 22H2
    ('Windows', '10.0.20348.0', 'modern'),       # Server 2022
    ('Windows', '10.0.22631.4317', 'modern'),    # Windows 11 23H2
    ('Windows', '10.0.26100.1', 'modern'),       # Server 2025 / Windows 11 24H2
    ('Windows', '10.1.0.0', 'modern'),           # a later minor version
    ('Windows', '11.0.1.0', 'modern'),           # a later major version
    ('windows', '10.0.14393.0', 'legacy'),       # case does not matter
    (' Windows ', '10.0.20348.0', 'modern'),
    # macOS: `security import` rejects AES/PBES2 PKCS#12, whatever the version.
    ('Darwin', '14.5', 'legacy'),
    ('Darwin', '15.1', 'legacy'),
    ('Darwin', None, 'legacy'),
    ('MacOSX', '13.6', 'legacy'),
    ('darwin', '', 'legacy'),
    # Everything else reads modern PKCS#12 (NSS pk12util, OpenSSL 1.1.1+).
    ('Debian', '12', 'modern'),
    ('Debian', '12.7', 'modern'),
    ('RedHat', '9.4', 'modern'),
    ('Suse', '15.6', 'modern'),
    ('Archlinux', None, 'modern'),
    ('FreeBSD', '14.1', 'modern'),
    # A Linux version number that looks old is not read as a Windows build.
    ('Debian', '6.3.9600.0', 'modern'),
])
def test_decision_from_facts(os_family, version, expected):
    assert pkcs12_encryption_for(os_family, version) == expected
    assert pkcs12_encryption_for(os_family, version, 'auto') == expected
    assert pkcs12_encryption_for(os_family, version, None) == expected


@pytest.mark.parametrize(('os_family', 'version', 'requested'), [
    ('Windows', '10.0.14393.0', 'modern'),
    ('Windows', '10.0.20348.0', 'legacy'),
    ('Darwin', '14.5', 'modern'),
    ('Debian', '12', 'legacy'),
    ('Windows', 'not-a-version', 'legacy'),  # an explicit choice does not need readable facts
    (None, None, 'modern'),
])
def test_explicit_request_wins(os_family, version, requested):
    assert pkcs12_encryption_for(os_family, version, requested) == requested
    assert pkcs12_encryption_for(os_family, version, requested.upper()) == requested


@pytest.mark.parametrize('version', ['', None, 'Windows 10', '10', '10.x.17763', 'latest'])
def test_unreadable_windows_version_is_an_error(version):
    with pytest.raises(AnsibleFilterError, match='cannot read the Windows version'):
        pkcs12_encryption_for('Windows', version)


@pytest.mark.parametrize('requested', ['aes', '3des', 'pbes2', ''])
def test_unknown_request_is_an_error(requested):
    with pytest.raises(AnsibleFilterError, match='requested must be one of auto, modern, legacy'):
        pkcs12_encryption_for('Windows', '10.0.20348.0', requested)


@pytest.mark.parametrize('os_family', [None, '', '  ', 10])
def test_missing_os_family_is_an_error(os_family):
    with pytest.raises(AnsibleFilterError, match='os_family must be a non-empty string'):
        pkcs12_encryption_for(os_family, '10.0.20348.0')


def test_filter_is_registered():
    assert FilterModule().filters() == {'pkcs12_encryption_for': pkcs12_encryption_for}
