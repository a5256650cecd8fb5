# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for Chromium on Linux: where its NSS database is, and AutoSelectCertificateForUrls entries."""

from __future__ import annotations

import posixpath

from ansible.errors import AnsibleFilterError

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.chromium_policy import filter_names, make_entry


def chromium_nssdb(home, legacy_exists: bool = False) -> str:
    """Chromium reads ~/.pki/nssdb when it exists, otherwise $HOME/.local/share/pki/nssdb.

    ``home`` may also be a pair (home, legacy_exists), so a zipped list maps in one step.
    """
    if isinstance(home, (list, tuple)):
        home, legacy_exists = home
    return posixpath.join(home, '.pki/nssdb' if legacy_exists else '.local/share/pki/nssdb')


def chromium_auto_select(pattern: str, issuer_cn: str, subject: dict | None = None) -> str:
    """One AutoSelectCertificateForUrls entry: a JSON string with the URL pattern, an ISSUER CN filter and, with
    ``subject``, a SUBJECT filter (CN, L, O, OU) that tells identities of the same CA apart."""
    try:
        return make_entry(pattern, {'CN': issuer_cn}, filter_names(subject, 'subject'))
    except CertfleetError as exc:
        raise AnsibleFilterError('chromium_auto_select: %s' % exc.message) from exc


class FilterModule:
    def filters(self):
        return {'chromium_nssdb': chromium_nssdb, 'chromium_auto_select': chromium_auto_select}
