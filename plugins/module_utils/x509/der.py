# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal DER reader: just enough to tell how a PKCS#12 file is encrypted (private module_utils)."""

from __future__ import annotations


class DERError(ValueError):
    pass


def read_tlv(data: bytes, offset: int = 0):
    """Return (tag, value bytes, offset after the element)."""
    if offset + 2 > len(data):
        raise DERError('truncated element')
    tag = data[offset]
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7f
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError('bad length')
        length = int.from_bytes(data[pos:pos + count], 'big')
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError('element runs past the end')
    return tag, data[pos:end], end


def children(value: bytes) -> list:
    """Split a constructed value into its (tag, value) elements."""
    result = []
    offset = 0
    while offset < len(value):
        tag, inner, offset = read_tlv(value, offset)
        result.append((tag, inner))
    return result


def decode_oid(value: bytes) -> str:
    if not value:
        raise DERError('empty OID')
    first = value[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    number = 0
    for byte in value[1:]:
        number = (number << 7) | (byte & 0x7f)
        if not byte & 0x80:
            parts.append(number)
            number = 0
    return '.'.join(str(p) for p in parts)


def decode_int(value: bytes) -> int:
    return int.from_bytes(value, 'big', signed=True)


SEQUENCE = 0x30
OID = 0x06
OCTET_STRING = 0x04
INTEGER = 0x02
