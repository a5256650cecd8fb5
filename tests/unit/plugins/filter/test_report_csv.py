# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's CSV goes through the collection's one CSV writer: cells a spreadsheet would run are neutralised."""

from __future__ import annotations

import csv
import io

import pytest

from ansible_collections.certfleet.pki.plugins.filter.report import to_csv
from ansible_collections.certfleet.pki.plugins.module_utils.common import tabular

DANGEROUS = ['=HYPERLINK("http://evil.example","x")', '@SUM(1+1)*cmd|\' /C calc\'!A0', '+1+1', '-2+3',
             '\t=1+1', '\r=1+1', '  =1+1']


def _cells(text: str) -> list:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize('identity', DANGEROUS)
def test_identity_that_starts_a_formula_is_neutralised(identity):
    rows = _cells(to_csv([{'identity': identity, 'serial': '0A', 'hosts': ['h1', identity], 'days_left': -3}]))
    assert rows[0][0] == 'identity'
    cell = rows[1][0]
    assert cell.startswith("'"), cell
    assert '\t' not in cell and '\r' not in cell
    assert rows[1][4].startswith("'") is False  # hosts: 'h1 ...' starts with h, the formula is not at the start
    assert rows[1][7] == '-3'  # a number is a number, not a formula


def test_filter_and_inventory_share_the_writer(monkeypatch):
    calls = []
    real = tabular.render_table

    def spy(header, rows, delimiter='\t'):
        calls.append(delimiter)
        return real(header, rows, delimiter)

    monkeypatch.setattr('ansible_collections.certfleet.pki.plugins.filter.report.render_table', spy)
    to_csv([{'identity': 'alice'}])
    assert calls == [',']


def test_harmless_cells_are_unchanged():
    rows = _cells(to_csv([{'identity': 'alice@example.org', 'serial': '0A', 'expiring': True, 'hosts': ['h1', 'h2'],
                           'revoked_at': None, 'renewed_by': 'Smith, "Al"'}]))
    assert rows[1][0] == 'alice@example.org'
    assert rows[1][4] == 'h1 h2'
    assert rows[1][8] == 'yes'
    assert rows[1][11] == ''
    assert rows[1][12] == 'Smith, "Al"'
