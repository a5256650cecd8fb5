# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for Chromium on Linux: where its NSS database is, and AutoSelectCertificateForUrls entries."""

from __future__ import annotations

import json
import posixpath


def chromium_nssdb(home, legacy_exists: bool = False) -> str:
    """Chromium reads ~/.pki/nssdb when it exists, otherwise $HOME/.local/share/pki/nssdb.

    ``home`` may also be a pair (home, legacy_exists), so a zipped list maps in one step.
    """
    if isinstance(home, (list, tuple)):
        home, legacy_exists = home
    return posixpath.join(home, '.pki/nssdb' if legacy_exists else '.local/share/pki/nssdb')


def chromium_auto_select(pattern: str, issuer_cn: str) -> str:
    """One AutoSelectCertificateForUrls entry: a JSON string with the URL pattern and an ISSUER CN filter."""
    return json.dumps({'pattern': pattern, 'filter': {'ISSUER': {'CN': issuer_cn}}}, sort_keys=True)


class FilterModule:
    def filters(self):
        return {'chromium_nssdb': chromium_nssdb, 'chromium_auto_select': chromium_auto_select}
