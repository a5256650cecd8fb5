# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The windows_store role's decision on a My store: new, chain, superseded, refused and removed certificates."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.certfleet.pki.plugins.filter.windows_store_plan import FilterModule, windows_store_plan

NEW = 'A' * 40
OLD = 'B' * 40
CHAIN = 'C' * 40
SAME_NAME_OTHER_CA = 'D' * 40
FOREIGN = 'E' * 40
OLDER = 'F' * 40
CA_DN = 'CN=Certfleet Test Client CA, O=Example Org, C=DE'
AKI = {'critical': False, 'field': 'Authority Key Identifier', 'value': 'KeyID=2b d0 69 47'}
OTHER_AKI = {'critical': False, 'field': 'Authority Key Identifier', 'value': 'KeyID=99 99 99 99'}


def certificate(thumbprint, issuer=CA_DN, key=True, aki='same', is_ca=None):
    aki = AKI if aki == 'same' else aki
    entry = {'thumbprint': thumbprint, 'issuer': issuer, 'subject': 'CN=%s' % thumbprint[:4],
             'has_private_key': key, 'extensions': [aki] if aki else []}
    if is_ca is not None:
        entry['is_ca'] = is_ca
    return entry


MY = [
    certificate(NEW),
    certificate(OLD),
    certificate(OLDER, key=False),
    certificate(CHAIN, key=False, is_ca=True),
    certificate(SAME_NAME_OTHER_CA, aki=OTHER_AKI),
    certificate(FOREIGN, issuer='CN=Foreign CA', aki=None),
]
PFX = [NEW.lower(), CHAIN]


def plan(my=None, **kwargs):
    kwargs.setdefault('pfx_thumbprints', PFX)
    return windows_store_plan(MY if my is None else my, **kwargs)


def test_registered_as_a_filter():
    assert FilterModule().filters() == {'windows_store_plan': windows_store_plan}


def test_new_chain_superseded_and_foreign_are_told_apart():
    result = plan(requested_removals=[FOREIGN.lower(), 'ff:' * 19 + 'ff'])
    assert result['new_thumbprint'] == NEW               # from the PFX, with its key
    assert result['new']['has_private_key'] is True
    assert result['new_issuer'] == CA_DN
    assert result['new_aki'] == [AKI]
    assert result['keyed_from_pfx'] == [NEW]
    assert result['chain_in_my'] == [CHAIN]              # from the PFX, no key
    assert result['ca_in_my'] == [CHAIN]
    # Same issuer name and AKI, not a CA, not the new one; another CA with the same name is not "this CA".
    assert result['issued_by_ca'] == [OLD, OLDER]
    assert result['requested_present'] == [FOREIGN, OLDER]
    assert result['refused'] == [FOREIGN]
    assert result['to_remove'] == [OLD, OLDER, FOREIGN]


@pytest.mark.parametrize(('requested', 'remove_superseded', 'refused', 'to_remove'), [
    ([], True, [], [OLD, OLDER]),
    ([], False, [], []),
    ([OLDER], False, [], [OLDER]),
    ([OLDER, OLDER.lower()], True, [], [OLD, OLDER]),          # no duplicates
    ([NEW], True, [NEW], [OLD, OLDER, NEW]),                   # the new certificate is never superseded
    ([CHAIN], True, [CHAIN], [OLD, OLDER, CHAIN]),             # nor a CA certificate
    ([SAME_NAME_OTHER_CA], False, [SAME_NAME_OTHER_CA], [SAME_NAME_OTHER_CA]),
    (['1' * 40], True, [], [OLD, OLDER]),                      # not in My: nothing to refuse or remove
    ([':'.join([OLD[i:i + 2] for i in range(0, 40, 2)]).lower()], False, [], [OLD]),
    ([OLD], 'yes', [], [OLD, OLDER]),
    ([OLD], 'false', [], [OLD]),
])
def test_refused_and_removed(requested, remove_superseded, refused, to_remove):
    result = plan(requested_removals=requested, remove_superseded=remove_superseded)
    assert result['refused'] == refused
    assert result['to_remove'] == to_remove


def test_without_an_aki_the_issuer_name_decides():
    my = [certificate(NEW, aki=None), certificate(OLD, aki=None), certificate(SAME_NAME_OTHER_CA, aki=OTHER_AKI),
          certificate(FOREIGN, issuer='CN=Foreign CA', aki=None)]
    result = plan(my, pfx_thumbprints=[NEW])
    assert result['new_aki'] == []
    assert result['issued_by_ca'] == [OLD, SAME_NAME_OTHER_CA]


@pytest.mark.parametrize(('expected', 'pfx', 'new'), [
    (NEW, [], NEW),                                                   # the expected thumbprint wins
    (':'.join([NEW[i:i + 2] for i in range(0, 40, 2)]).lower(), [], NEW),
    ('', PFX, NEW),                                                   # else the PFX's certificate with a key
    ('', [CHAIN], ''),                                                # the PFX brought no keyed certificate
    ('', [], ''),
])
def test_the_new_thumbprint(expected, pfx, new):
    result = plan(expected_thumbprint=expected, pfx_thumbprints=pfx)
    assert result['new_thumbprint'] == new
    if not new:
        assert result['new'] == {} and result['new_issuer'] == '' and result['new_aki'] == []


def test_nothing_known_yet_decides_nothing():
    """Before win_certificate_info has run (the plan, the probe's `when`): empty lists, nothing present."""
    result = windows_store_plan([], before=None, pfx_thumbprints=None, expected_thumbprint='',
                                requested_removals=None)
    assert result['already_present'] is False
    assert result['new_thumbprint'] == '' and result['to_remove'] == [] and result['refused'] == []


@pytest.mark.parametrize(('before', 'expected', 'pfx', 'present'), [
    ([certificate(NEW)], NEW, [], True),                 # rerun with the thumbprint: no PFX opened
    ([certificate(NEW, key=False)], NEW, [], False),     # there, but without its key
    ([certificate(OLD)], NEW, [], False),                # first run
    ([certificate(NEW)], '', PFX, True),                 # rerun without the thumbprint
    ([certificate(OLD)], '', PFX, False),
    ([], NEW, PFX, False),
])
def test_already_present(before, expected, pfx, present):
    result = windows_store_plan([], before=before, pfx_thumbprints=pfx, expected_thumbprint=expected)
    assert result['already_present'] is present
    assert result['keyed_before'] == [c['thumbprint'] for c in before if c['has_private_key']]


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'my': 'not a list'}, 'must be a list of certificates'),
    ({'my': ['AAAA']}, 'must be a list of certificates'),
    ({'before': {'certificates': []}}, 'before must be a list of certificates'),
    ({'pfx_thumbprints': NEW}, 'pfx_thumbprints must be a list of thumbprints'),
    ({'requested_removals': OLD}, 'requested_removals must be a list of thumbprints'),
    ({'remove_superseded': 'sometimes'}, 'remove_superseded must be a boolean'),
])
def test_bad_input_is_an_error(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan(**kwargs)
