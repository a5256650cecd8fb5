# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""windows_store_plan: what the windows_store role does with the certificates in a Windows My store.

A pure decision from what ``ansible.windows.win_certificate_info`` lists, shared by the role's tasks through thin
lookups in roles/windows_store/vars/main.yml:

- the new certificate: the expected thumbprint, or else the first certificate of the PFX that sits in My with its key;
- already present: the client certificate was in My with its key before the import (the import is skipped);
- chain: certificates of the PFX in My without a key that are not the new one;
- issued by this CA (superseded): every other certificate in My with the new one's issuer name and, when the new one
  has it, the same Authority Key Identifier; CA certificates in My are never among them;
- refused: a requested removal that is in My but not issued by this CA (or is the new certificate);
- to remove: the superseded ones (unless turned off) and the requested ones that are in My.

Thumbprints are SHA-1, upper-case hex without separators, as win_certificate_info returns them.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

AKI_FIELD = 'Authority Key Identifier'
_NOT_HEX = re.compile(r'[^0-9A-F]')


def _thumbprint(value) -> str:
    return _NOT_HEX.sub('', str(value).upper()) if value is not None else ''


def _certificates(value, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, dict) for item in value):
        raise AnsibleFilterError('windows_store_plan: %s must be a list of certificates as win_certificate_info '
                                 'returns them (dicts with thumbprint, issuer, has_private_key, ...), not %r'
                                 % (name, value))
    return [dict(item, thumbprint=_thumbprint(item.get('thumbprint'))) for item in value]


def _thumbprints(value, name: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise AnsibleFilterError('windows_store_plan: %s must be a list of thumbprints, not %r' % (name, value))
    return [_thumbprint(item) for item in value]


def _unique(values) -> list:
    seen = set()
    return [value for value in values if not (value in seen or seen.add(value))]


def windows_store_plan(my_certificates, before=None, pfx_thumbprints=None, expected_thumbprint='',
                       requested_removals=None, remove_superseded=True) -> dict:
    """Decide new, chain, superseded (issued by this CA), refused and to-remove certificates of a My store."""
    my = _certificates(my_certificates, 'the input (My after the import)')
    keyed_before = [c['thumbprint'] for c in _certificates(before, 'before') if c.get('has_private_key')]
    pfx = _thumbprints(pfx_thumbprints, 'pfx_thumbprints')
    expected = _thumbprint(expected_thumbprint)
    requested = _thumbprints(requested_removals, 'requested_removals')
    try:
        remove_superseded = boolean(remove_superseded, strict=True)
    except TypeError as exc:
        raise AnsibleFilterError('windows_store_plan: remove_superseded must be a boolean: %s' % exc) from exc

    keyed_from_pfx = [c['thumbprint'] for c in my if c['thumbprint'] in pfx and c.get('has_private_key')]
    already_present = expected in keyed_before if expected else any(t in keyed_before for t in pfx)
    new_thumbprint = expected or (keyed_from_pfx[0] if keyed_from_pfx else '')
    new = next((c for c in my if c['thumbprint'] == new_thumbprint), {})
    new_issuer = new.get('issuer') or ''
    new_aki = [e for e in new.get('extensions') or [] if isinstance(e, dict) and e.get('field') == AKI_FIELD]

    ca_in_my = [c['thumbprint'] for c in my if c.get('is_ca')]
    chain_in_my = [c['thumbprint'] for c in my
                   if c['thumbprint'] in pfx and c['thumbprint'] != new_thumbprint and not c.get('has_private_key')]
    candidates = [c for c in my if c.get('issuer') == new_issuer and c['thumbprint'] != new_thumbprint
                  and c['thumbprint'] not in ca_in_my]
    issued_by_ca = [c['thumbprint'] for c in candidates if not new_aki or new_aki[0] in (c.get('extensions') or [])]

    in_my = {c['thumbprint'] for c in my}
    requested_present = [t for t in requested if t in in_my]
    return {
        'new_thumbprint': new_thumbprint,
        'new': new,
        'new_issuer': new_issuer,
        'new_aki': new_aki,
        'keyed_before': keyed_before,
        'keyed_from_pfx': keyed_from_pfx,
        'already_present': already_present,
        'ca_in_my': ca_in_my,
        'chain_in_my': chain_in_my,
        'issued_by_ca': issued_by_ca,
        'requested_present': requested_present,
        'refused': [t for t in requested_present if t not in issued_by_ca],
        'to_remove': _unique((issued_by_ca if remove_superseded else []) + requested_present),
    }


class FilterModule:
    def filters(self):
        return {'windows_store_plan': windows_store_plan}
