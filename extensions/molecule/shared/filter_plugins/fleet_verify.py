# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the molecule fleet scenarios: compare the CA store, the CRL and the NSS databases with what the
scenario expects, and return every mismatch as a sentence naming the identity, host and database."""

from __future__ import annotations

import re


def _serial(value) -> str:
    return re.sub(r'[^0-9A-F]', '', str(value).upper()).lstrip('0') or '0'


def crl_text_serials(text: str) -> list:
    """The serial numbers listed by ``openssl crl -noout -text``."""
    return sorted({_serial(match) for match in re.findall(r'Serial Number:\s*([0-9A-Fa-f:]+)', text or '')})


def _carried(fleet: list) -> dict:
    """identity -> sorted hosts that carry it, from [{host, identity}, ...]."""
    carried = {}
    for entry in fleet:
        carried.setdefault(entry['identity'], set()).add(entry['host'])
    return {name: sorted(hosts) for name, hosts in carried.items()}


def fleet_ca_problems(certificates: list, crl_serials: list, fleet: list, expected_count: int = 1,
                      unfinished_hosts=(), revoked_identities=None) -> list:
    """Mismatches between the CA store (client_certificate_info ``certificates``), the CRL and the expected state.

    Identities carried by an ``unfinished_hosts`` host must keep their superseded certificates valid (not revoked,
    not in the CRL); every other superseded certificate must be revoked (superseded) and listed in the CRL.
    ``revoked_identities`` maps identities revoked on purpose to their reason: none of their certificates may stay
    valid.
    """
    problems = []
    crl = {_serial(s) for s in crl_serials}
    unfinished_hosts = set(unfinished_hosts or [])
    revoked_identities = revoked_identities or {}
    carried = _carried(fleet)
    by_identity = {}
    for cert in certificates:
        by_identity.setdefault(cert['identity'], []).append(cert)
    for identity, hosts in sorted(carried.items()):
        certs = by_identity.get(identity, [])
        if len(certs) != int(expected_count):
            problems.append('%s: the CA store holds %d certificates, expected %d (%s)'
                            % (identity, len(certs), int(expected_count), [c['serial'] for c in certs]))
        if identity in revoked_identities:
            for cert in certs:
                if cert['status'] != 'revoked' or _serial(cert['serial']) not in crl:
                    problems.append('%s: certificate %s should be revoked and in the CRL (status %s)'
                                    % (identity, cert['serial'], cert['status']))
                elif cert.get('revocation_reason') not in (revoked_identities[identity], 'superseded'):
                    problems.append('%s: certificate %s revoked for %s' % (identity, cert['serial'],
                                                                           cert['revocation_reason']))
            continue
        current = [c for c in certs if c.get('current')]
        if len(current) != 1:
            problems.append('%s: %d current certificates in the CA store, expected 1' % (identity, len(current)))
        for cert in current:
            if cert['status'] != 'valid' or _serial(cert['serial']) in crl:
                problems.append('%s: the current certificate %s is %s%s' % (
                    identity, cert['serial'], cert['status'], ' and in the CRL' if _serial(cert['serial']) in crl
                    else ''))
        unfinished = bool(unfinished_hosts.intersection(hosts))
        for cert in certs:
            if cert.get('current'):
                continue
            in_crl = _serial(cert['serial']) in crl
            if unfinished:
                if cert['status'] != 'valid' or not cert.get('pending_revocation') or in_crl:
                    problems.append('%s (carried by unfinished host(s) %s): superseded certificate %s must stay '
                                    'valid and pending revocation, out of the CRL (status %s, pending %s, in CRL %s)'
                                    % (identity, sorted(unfinished_hosts.intersection(hosts)), cert['serial'],
                                       cert['status'], cert.get('pending_revocation'), in_crl))
            elif cert['status'] != 'revoked' or cert.get('revocation_reason') != 'superseded' or not in_crl:
                problems.append('%s: superseded certificate %s must be revoked (superseded) and in the CRL '
                                '(status %s, reason %s, in CRL %s)' % (identity, cert['serial'], cert['status'],
                                                                       cert.get('revocation_reason'), in_crl))
    revoked = {_serial(c['serial']) for c in certificates if c['status'] == 'revoked'}
    if revoked != crl:
        problems.append('the CRL lists %s but the CA store has revoked %s' % (sorted(crl), sorted(revoked)))
    return problems


def fleet_store_problems(databases: list, certificates: list, fleet: list, unfinished_hosts=(),
                         revoked_identities=None) -> list:
    """Mismatches between the NSS databases and the CA store.

    ``databases``: [{host, kind, db, identities (expected in this db), certificates (nss_certificate_info,
    filtered by the CA as issuer)}]. A finished host's database holds exactly the current certificate of each of
    its identities, with its key, and no other certificate of the CA; an unfinished host's database still holds
    the superseded (old) certificate of each of its identities. Identities in ``revoked_identities`` must be gone.
    """
    problems = []
    unfinished_hosts = set(unfinished_hosts or [])
    revoked_identities = revoked_identities or {}
    owner = {_serial(c['serial']): c['identity'] for c in certificates}
    current = {c['identity']: _serial(c['serial']) for c in certificates if c.get('current')}
    old = {}
    for cert in certificates:
        if not cert.get('current') and cert['status'] == 'valid':
            old.setdefault(cert['identity'], set()).add(_serial(cert['serial']))
    for view in databases:
        where = '%s %s %s' % (view['host'], view['kind'], view['db'])
        found = {}
        for cert in view['certificates']:
            found[_serial(cert['serial'])] = cert
        for serial in found:
            if serial not in owner:
                problems.append('%s: holds a certificate of the CA unknown to the CA store (%s)' % (where, serial))
        expected = [name for name in view['identities'] if name not in revoked_identities]
        for name in view['identities']:
            if name in revoked_identities:
                left = sorted(s for s in found if owner.get(s) == name)
                if left:
                    problems.append('%s: revoked identity %s still installed (%s)' % (where, name, left))
        if view['host'] in unfinished_hosts:
            for name in expected:
                missing = sorted(old.get(name, set()) - set(found))
                if not old.get(name):
                    problems.append('%s: %s has no valid superseded certificate left to keep' % (where, name))
                if missing:
                    problems.append('%s: the old certificate(s) %s of %s are gone although the host failed'
                                    % (where, missing, name))
            continue
        want = {current[name] for name in expected if name in current}
        have = {s for s in found if owner.get(s) in expected}
        if have != want:
            problems.append('%s: holds %s for %s, expected exactly the current %s'
                            % (where, sorted(have), expected, sorted(want)))
        strays = sorted(s for s in found if owner.get(s) not in view['identities'] and s in owner)
        if strays:
            problems.append('%s: holds certificates of identities it does not carry (%s)' % (where, strays))
        for serial in want & set(found):
            if found[serial].get('has_key') is not True:
                problems.append('%s: certificate %s of %s is there without its key' % (where, serial, owner[serial]))
    return problems


def fleet_pairs(hosts, hostvars) -> list:
    """[{host, identity}] for every identity each of ``hosts`` carries (certfleet_identities)."""
    pairs = []
    for host in hosts:
        for entry in hostvars[host].get('certfleet_identities') or []:
            pairs.append({'host': host, 'identity': entry['identity']})
    return pairs


def fleet_db_views(nss_results: list, host: str, identities: list) -> list:
    """The registered loop of nss_certificate_info over a host's databases, as views for fleet_store_problems.
    A database under pki/nssdb is Chromium's, the others are Firefox profiles."""
    views = []
    for result in nss_results:
        kind = 'chromium' if '/pki/nssdb' in result['item'] else 'firefox'
        views.append({'host': host, 'db': result['item'], 'kind': kind, 'certificates': result['certificates'],
                      'identities': [entry['identity'] for entry in identities if kind in entry.get('stores', [])]})
    return views


class FilterModule:
    def filters(self):
        return {
            'crl_text_serials': crl_text_serials,
            'fleet_db_views': fleet_db_views,
            'fleet_pairs': fleet_pairs,
            'fleet_ca_problems': fleet_ca_problems,
            'fleet_store_problems': fleet_store_problems,
        }
