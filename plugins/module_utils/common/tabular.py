# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TSV and CSV files as registration officers send them: strict reading, safe writing (private module_utils)."""

from __future__ import annotations

import csv
import io
import os

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

FORMATS = ('auto', 'tsv', 'csv')
MAX_BYTES = 64 * 1024 * 1024
_BOMS = (
    (b'\x00\x00\xfe\xff', 'UTF-32 (big-endian)'),
    (b'\xff\xfe\x00\x00', 'UTF-32 (little-endian)'),
    (b'\xef\xbb\xbf', 'UTF-8 with a byte-order mark'),
    (b'\xff\xfe', 'UTF-16 (little-endian)'),
    (b'\xfe\xff', 'UTF-16 (big-endian)'),
)
# What a spreadsheet would run as a formula when it opens a file we wrote.
_FORMULA_START = ('=', '+', '-', '@', '\t', '\r')


class Table:
    """A parsed file: the header as written, and data rows with the line each starts on."""

    def __init__(self, format: str, delimiter: str, header: list, header_line: int, rows: list):
        self.format = format
        self.delimiter = delimiter
        self.header = header
        self.header_line = header_line
        self.rows = rows  # [(line number, [values])]


def format_for(path: str, format: str = 'auto', sample: str = '') -> tuple:
    """(format name, delimiter) from the option, the file name, or the header line."""
    if format not in FORMATS:
        raise InputError('unknown format %r (use auto, tsv or csv)' % format, 'format')
    if format == 'auto':
        extension = os.path.splitext(path)[1].lower()
        if extension in ('.tsv', '.tab'):
            format = 'tsv'
        elif extension == '.csv':
            format = 'csv'
        elif '\t' in sample:
            format = 'tsv'
        elif ',' in sample or ';' in sample:
            format = 'csv'
        else:
            format = 'tsv'
    if format == 'tsv':
        return 'tsv', '\t'
    # Spreadsheets set to a European locale write ';' between fields.
    if ';' in sample and ',' not in sample:
        return 'csv', ';'
    return 'csv', ','


def decode_text(data: bytes, field: str = 'src') -> str:
    """UTF-8 without a byte-order mark, or a message that says what the file is and what to do."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise InputError('the file is %s; save it as UTF-8 without a byte-order mark (in Excel: "CSV UTF-8" '
                             'adds one; use "Text (Tab delimited)" or remove the mark)' % name, field)
    if b'\x00' in data:
        line = data[:data.index(b'\x00')].count(b'\n') + 1
        raise InputError('line %d holds a NUL byte: this is not a UTF-8 text file (UTF-16 without a byte-order '
                         'mark?); save it as UTF-8' % line, field)
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b'\n') + 1
        raise InputError('the file is not UTF-8: byte 0x%02X on line %d cannot be decoded (Latin-1 or '
                         'Windows-1252?); save it as UTF-8' % (data[exc.start], line), field)


def read_table(path: str, format: str = 'auto', field: str = 'src') -> Table:
    """Read a request file; blank lines and lines starting with # are skipped."""
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise InputError('%s is %d bytes; the limit is %d' % (path, size, MAX_BYTES), field)
        with open(path, 'rb') as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError('%s does not exist' % path, field)
    except IsADirectoryError:
        raise InputError('%s is a folder, expected a TSV or CSV file' % path, field)
    except PermissionError:
        raise InputError('%s cannot be read (permission denied)' % path, field)
    if not data.strip():
        raise InputError('%s is empty: expected a header line (action, identity, CN, ...) and one line per '
                         'request' % path, field)
    text = decode_text(data, field)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith('#')), '')
    format, delimiter = format_for(path, format, first)
    if format == 'tsv':
        reader = csv.reader(io.StringIO(text, newline=''), delimiter='\t', quoting=csv.QUOTE_NONE, strict=True)
    else:
        reader = csv.reader(io.StringIO(text, newline=''), delimiter=delimiter, strict=True)
    header = None
    header_line = 0
    rows = []
    line = 1
    try:
        for values in reader:
            start, line = line, reader.line_num + 1
            if not values or all(not v.strip() for v in values) or values[0].lstrip().startswith('#'):
                continue
            if header is None:
                header, header_line = values, start
            else:
                rows.append((start, values))
    except csv.Error as exc:
        raise InputError('line %d is not valid %s: %s' % (line, format.upper(), exc), field)
    if header is None:
        raise InputError('%s is empty: expected a header line (action, identity, CN, ...)' % path, field)
    if not rows:
        raise InputError('%s has a header but no request lines' % path, field)
    return Table(format, delimiter, header, header_line, rows)


def render_table(header: list, rows: list, delimiter: str = '\t') -> bytes:
    """TSV or CSV text for ``rows`` (lists of values). Cells a spreadsheet would run as formulas are quoted.

    The one CSV/TSV writer of the collection: the inventory module, the bulk results and the report playbook's
    ``to_csv`` filter all write through it.
    """
    if delimiter == '\t':  # IANA TSV: no quoting; _cell() removed tabs and line breaks
        lines = ['\t'.join(_cell(value) for value in row) for row in [header] + list(rows)]
        return ('\n'.join(lines) + '\n').encode('utf-8')
    buffer = io.StringIO(newline='')
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator='\n')
    writer.writerow([_cell(value) for value in header])
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue().encode('utf-8')


def _cell(value) -> str:
    """One cell: no tab or line break inside, and never a formula (OWASP CSV injection: a leading =, +, -, @,
    tab or carriage return, also after leading blanks, gets a ' in front). A number is a number, not a formula."""
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        value = ' '.join('' if item is None else str(item) for item in value)
    raw = str(value)
    text = raw.replace('\t', ' ').replace('\r', ' ').replace('\n', ' ')
    if raw.startswith(_FORMULA_START) or raw.lstrip(' \t\r\n').startswith(_FORMULA_START):
        return "'" + text
    return text
