# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_table: certificate dicts (as client_certificate_info returns them) to aligned text lines."""

from __future__ import annotations

DEFAULT_COLUMNS = ('identity', 'serial', 'status', 'current', 'not_after', 'renewed_by')
_WIDTH_LIMITS = {'serial': 16, 'renewed_by': 16, 'renews': 16, 'fingerprint_sha256': 16, 'fingerprint_sha1': 16}


def _cell(certificate: dict, column: str) -> str:
    value = certificate.get(column)
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, list):
        return ','.join(str(v) for v in value)
    text = str(value)
    limit = _WIDTH_LIMITS.get(column)
    return text[:limit] + '…' if limit and len(text) > limit else text


def certificate_table(certificates, columns=None):
    columns = list(columns or DEFAULT_COLUMNS)
    rows = [[column.upper() for column in columns]]
    rows += [[_cell(certificate, column) for column in columns] for certificate in certificates or []]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return ['  '.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


class FilterModule:
    def filters(self):
        return {'certificate_table': certificate_table}
