# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML page of the report playbook (playbooks/templates/certificates.html.j2), rendered with Jinja2 and the
collection's own filters on fixed data and a fixed clock."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser

import jinja2
import pytest

from ansible_collections.certfleet.pki.plugins.filter.certificate_table import certificate_table
from ansible_collections.certfleet.pki.plugins.filter.report import certificate_report, drift_counts, timeline_axis

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TEMPLATES = os.path.join(_REPO, 'playbooks', 'templates')
# Three days before the first of a month: the first month tick sits a few pixels right of "now".
NOW = '2026-01-28T12:00:00Z'
TIMESTAMP = re.compile(r'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}')
FONT_PX = 12          # svg text { font-size: 12px }
CHAR_PX = 7.5         # generous width of one character at 12px


def _certificate(**fields):
    """A record with every field the info module returns that the page reads."""
    return dict({'current': False, 'pending_revocation': False, 'revoked_at': None, 'revocation_reason': None},
                **fields)


def _certificates():
    """In the CA store's order (identity, issue date, serial), which is the console table's order."""
    return [_certificate(**fields) for fields in [
        {'identity': 'alice', 'serial': 'A1', 'status': 'revoked', 'current': False,
         'not_after': '2026-12-01T00:00:00Z', 'revoked_at': '2026-01-20T09:30:00Z',
         'revocation_reason': 'superseded'},
        {'identity': 'alice', 'serial': 'A2', 'status': 'valid', 'current': True, 'pending_revocation': False,
         'not_after': '2026-02-10T00:00:00Z'},
        {'identity': 'bob', 'serial': 'B1', 'status': 'expired', 'current': False,
         'not_after': '2026-01-02T00:00:00Z'},
        {'identity': 'bob', 'serial': 'B2', 'status': 'valid', 'current': True, 'pending_revocation': False,
         'not_after': '2027-06-01T00:00:00Z'},
        {'identity': 'carol', 'serial': 'C1', 'status': 'valid', 'current': True, 'pending_revocation': True,
         'not_after': '2026-07-01T00:00:00Z'},
    ]]


def render(rows, now=NOW, host_audits=()):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters['certfleet.pki.timeline_axis'] = lambda _value, *a, **k: timeline_axis(now, *a, **k)
    counts = dict.fromkeys(('certificates', 'identities', 'hosts', 'valid', 'expiring', 'pending_revocation',
                            'revoked', 'expired', 'with_drift', 'awaiting_pickup'), 0)
    return env.get_template('certificates.html.j2').render(
        _certfleet_report_rows=rows, _certfleet_report_info={'host_audits': list(host_audits)},
        certfleet_report={'ca': 'CN=Example Client CA', 'generated_at': '2026-01-28T12:00:00Z',
                          'expiring_within': 30, 'counts': counts, 'drift': drift_counts(host_audits)})


class _Page(HTMLParser):
    """Collects the table's cells (class and text) per row, the SVG text elements and the CSS."""

    def __init__(self):
        super().__init__()
        self.rows, self.texts, self.css = [], [], ''
        self._cell = self._text = self._in_style = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'tr':
            self.rows.append([])
        elif tag == 'td':
            self._cell = {'class': attrs.get('class') or '', 'text': ''}
        elif tag == 'text':
            self._text = dict(attrs, text='')
        elif tag == 'style':
            self._in_style = True

    def handle_endtag(self, tag):
        if tag == 'td' and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None
        elif tag == 'text' and self._text is not None:
            self.texts.append(self._text)
            self._text = None
        elif tag == 'style':
            self._in_style = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell['text'] += data
        if self._text is not None:
            self._text['text'] += data
        if self._in_style:
            self.css += data


def _page(rows, host_audits=()):
    page = _Page()
    page.feed(render(rows, host_audits=host_audits))
    page.rows = [row for row in page.rows if row]      # the header row has th, not td
    return page


def _box(text):
    """Approximate bounding box (left, top, right, bottom) of an SVG text element."""
    width = len(text['text'].strip()) * CHAR_PX
    x, y = float(text['x']), float(text['y'])
    left = {'middle': x - width / 2, 'end': x - width}.get(text.get('text-anchor', 'start'), x)
    return left, y - FONT_PX, left + width, y


@pytest.fixture(name='rows')
def _rows():
    return certificate_report(_certificates(), [], 30, now=NOW)


def test_revoked_row_shows_no_days_left(rows):
    page = _page(rows)
    revoked = next(row for row in page.rows if row[1]['text'] == 'A1')
    days = next(cell for cell in revoked if 'days' in cell['class'])
    assert days['text'].strip() == '\u2014'
    valid = next(row for row in page.rows if row[1]['text'] == 'A2')
    assert next(cell for cell in valid if 'days' in cell['class'])['text'].strip() == '12'


def test_now_label_does_not_overlap_the_month_labels(rows):
    page = _page(rows)
    now = next(text for text in page.texts if text['text'].strip() == 'now')
    months = [text for text in page.texts if text['text'].strip() in
              {tick['label'] for tick in timeline_axis(NOW)}]
    assert len(months) == 12
    n_left, n_top, n_right, n_bottom = _box(now)
    for month in months:
        m_left, m_top, m_right, m_bottom = _box(month)
        overlaps = n_left < m_right and m_left < n_right and n_top < m_bottom and m_top < n_bottom
        assert not overlaps, (now, month)


def test_timestamps_do_not_wrap(rows):
    page = _page(rows)
    cells = [cell for row in page.rows for cell in row if TIMESTAMP.search(cell['text'])]
    assert len(cells) == 6                  # five not_after, one revoked_at
    assert all('time' in cell['class'].split() for cell in cells)
    rule = re.search(r'td\.time[^{]*\{([^}]*)\}', page.css)
    assert rule and 'white-space: nowrap' in rule.group(1)


def test_rows_are_in_the_console_table_order(rows):
    console = [line.split()[1] for line in certificate_table(rows, ['identity', 'serial'])[1:]]
    page = _page(rows)
    assert [row[1]['text'] for row in page.rows] == console == ['A1', 'A2', 'B1', 'B2', 'C1']
    labels = [text['text'].split('\u00b7')[1].strip() for text in page.texts if '\u00b7' in text['text']]
    assert labels == console


AUDITS = [
    {'host': 'pc1', 'audited_at': '2026-01-27T02:00:00Z',
     'summary': {'stores': 2, 'missing': 1, 'restored': 1, 'removed_revoked': 1, 'drift': True},
     'findings': [{'kind': 'missing', 'identity': 'alice', 'store': 'firefox', 'user': 'alice', 'outcome': 'restored'},
                  {'kind': 'revoked_installed', 'identity': 'alice', 'store': 'chromium', 'serial': 'A1',
                   'outcome': 'removed', 'reason': 'revoked'}]},
    {'host': 'pc2', 'audited_at': '2026-01-27T02:00:00Z', 'summary': {'stores': 1, 'drift': False}, 'findings': []},
]


def test_drift_column_and_last_audit_per_host():
    rows = certificate_report(_certificates(), [], 30, now=NOW, host_audits=AUDITS)
    page = _page(rows, AUDITS)
    certificates = {row[1]['text']: row for row in page.rows[:5]}
    assert [c['text'] for c in certificates['A2'] if c['class'] == 'drift'] == ['pc1 firefox/alice: missing, restored']
    assert [c['text'] for c in certificates['A1'] if c['class'] == 'drift'] == [
        'pc1 chromium: revoked copy installed, removed']
    assert [c['text'] for c in certificates['B2'] if c['class'] == 'drift'] == ['']
    audits = [[cell['text'].strip() for cell in row] for row in page.rows[5:]]
    assert audits == [['pc1', '2026-01-27T02:00:00Z', '2', '1', '1', '0', '1', '0', '0', '0', '0'],
                      ['pc2', '2026-01-27T02:00:00Z', '1', '0', '0', '0', '0', '0', '0', '0', '0']]
    assert '1 of 2 audited hosts had drift' in ' '.join(render(rows, host_audits=AUDITS).split())


def test_without_audits_the_page_says_so(rows):
    assert 'No host has been audited yet' in render(rows)


def test_pickup_column_in_the_page():
    rows = certificate_report(_certificates(), [], 30, now=NOW, pickups=[
        {'serial': 'A2', 'state': 'open', 'downloads': 0, 'window_ends_at': '2026-02-01T00:00:00Z'}])
    page = _page(rows)
    certificates = {row[1]['text']: row for row in page.rows}
    assert [c['text'] for c in certificates['A2'] if c['class'] == 'pickup'] == ['awaiting pickup until 2026-02-01']
    assert [c['text'] for c in certificates['B2'] if c['class'] == 'pickup'] == ['']
