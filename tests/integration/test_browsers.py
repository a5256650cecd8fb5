# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy role, proven with real clients against nginx requiring a client certificate and checking a CRL.

One story, in order (each step needs the previous one):
1. the CA exists and publishes a CRL; nginx starts with it;
2. the deploy role fills a Firefox profile (created by Firefox's layout, no cert9.db yet) and Chromium's NSS
   database, sets automatic selection, and checks the URL with curl before it finishes;
3. headless Firefox ESR, headless Chromium and curl (with an exported PKCS#12) are accepted, and nginx logs the
   deployed serial for each;
4. renewal with the same subject: after the role, each database holds exactly one client certificate and key
   (the new one, although NSS gives old and new the same nickname), and the browsers present the new serial;
5. revocation: after the CRL is republished and nginx reloaded, every client is refused as revoked.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets

import pytest
from browsers_support import (
    MtlsServer, chromium_visit, curl_visit, firefox_profile, firefox_visit, normalize_serial, nss_certificates,
    nss_keys, require_tools, trust_server_ca,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get('CI'),
                                reason='writes the Chromium managed policy under /etc (root)')

POLICY = '/etc/chromium/policies/managed/certfleet-client-certificate.json'
CHROME_POLICY = '/etc/opt/chrome/policies/managed/certfleet-client-certificate.json'


@pytest.fixture(scope='module')
def story(tmp_path_factory, collections_path):
    require_tools('nginx', 'firefox-esr', 'chromium', 'curl', 'certutil', 'pk12util')
    from integration_support import AnsibleRunner
    base = tmp_path_factory.mktemp('browsers')
    work = base / 'work'
    work.mkdir()
    os.chmod(work, 0o700)
    home = base / 'home'
    home.mkdir()
    profile = firefox_profile(home)
    ansible = AnsibleRunner(base / 'ansible')
    state = {'ansible': ansible, 'work': work, 'home': home, 'profile': profile,
             'vars': {'certfleet_test_dir': str(work), 'certfleet_home': str(home),
                      'certfleet_ca_passphrase': secrets.token_urlsafe(24),
                      'certfleet_p12_password': secrets.token_urlsafe(16)}}
    playbook = pathlib.Path(__file__).resolve().parent / 'playbooks' / 'browsers.yml'

    def phase(name: str) -> None:
        run = ansible.run(playbook, extra_vars=dict(state['vars'], certfleet_phase=name))
        assert run.returncode == 0, run.explain()

    state['phase'] = phase
    phase('ca')
    server = MtlsServer(base / 'nginx', work / 'ca' / 'ca.pem', work / 'crl.pem')
    server.start()
    state['server'] = server
    state['vars'].update({'certfleet_url': server.url, 'certfleet_server_ca': str(server.pki['ca'])})
    try:
        yield state
    finally:
        server.stop()
        for path in (POLICY, CHROME_POLICY):
            if os.path.exists(path):
                os.unlink(path)


def _deploy_result(state, phase: str) -> dict:
    return json.loads((state['work'] / ('deploy_result-%s.json' % phase)).read_text())


def _chromium_db(state):
    return state['home'] / '.local' / 'share' / 'pki' / 'nssdb'


def _browsers_present(state, expected_serial: str, tag: str) -> None:
    server = state['server']
    trust_server_ca(state['profile'], server.pki['ca'])
    trust_server_ca(_chromium_db(state), server.pki['ca'])
    screenshot = state['work'] / ('firefox-%s.png' % tag)
    assert firefox_visit(state['home'], state['profile'], server.url, screenshot) == 0
    assert screenshot.stat().st_size > 0
    seen = server.last_from('Firefox')
    assert (seen['status'], seen['verify'], seen['serial']) == (200, 'SUCCESS', expected_serial)

    dom = chromium_visit(state['home'], server.url)
    shown = re.search(r'serial=([0-9A-Fa-f]+)', dom)
    assert shown and normalize_serial(shown.group(1)) == expected_serial, dom[-500:]
    seen = server.last_from('HeadlessChrome')
    assert (seen['status'], seen['verify'], seen['serial']) == (200, 'SUCCESS', expected_serial)


def test_deploy_fills_firefox_and_chromium_and_browsers_authenticate(story):
    story['phase']('deploy')
    result = _deploy_result(story, 'deploy')
    serial = result['serial']
    assert result['action'] == 'issued'
    assert set(result['stores']) == {'firefox', 'chromium'}
    assert result['stores']['firefox']['imported'] and result['stores']['chromium']['imported']
    assert result['verified_url'] == story['server'].url
    # The role's own check reached nginx through curl with the new certificate.
    assert story['server'].last_from('curl')['serial'] == serial
    # Firefox picks it automatically; Chromium has the managed policy naming this CA.
    assert 'Select Automatically' in (story['profile'] / 'user.js').read_text()
    policy = json.loads(open(POLICY).read())
    assert json.loads(policy['AutoSelectCertificateForUrls'][0])['filter']['ISSUER']['CN'] == \
        'certfleet browser test client CA'
    _browsers_present(story, serial, 'issued')


def test_curl_with_exported_pkcs12_is_accepted(story):
    story['phase']('export')
    code, body = curl_visit(story['work'] / 'alice.p12', story['vars']['certfleet_p12_password'],
                            story['server'].pki['ca'], story['server'].url, story['work'])
    serial = _deploy_result(story, 'deploy')['serial']
    assert code == 200 and serial in body.upper(), body
    assert story['server'].last_from('curl')['serial'] == serial


def test_renewal_leaves_exactly_the_new_certificate_in_every_database(story):
    old = _deploy_result(story, 'deploy')
    story['phase']('renew')
    new = _deploy_result(story, 'renew')
    assert new['serial'] != old['serial'] and new['previous_serial'] == old['serial']
    assert old['serial'] in new['stores']['firefox']['removed']
    assert old['serial'] in new['stores']['chromium']['removed']
    for db in (story['profile'], _chromium_db(story)):
        client_rows = [row for row in nss_certificates(db) if row[1] == 'u,u,u']
        # Old and new share a subject, so NSS gave them one nickname; exactly one remains, with one key.
        assert len(client_rows) == 1, client_rows
        assert len(nss_keys(db)) == 1
    _browsers_present(story, new['serial'], 'renewed')


def test_revoked_certificate_is_refused_by_every_client(story):
    current = _deploy_result(story, 'renew')['serial']
    story['phase']('revoke')
    server = story['server']
    server.reload()
    firefox_visit(story['home'], story['profile'], server.url, story['work'] / 'firefox-revoked.png')
    seen = server.last_from('Firefox')
    assert seen['serial'] == current and seen['status'] == 400 and 'revoked' in seen['verify']
    dom = chromium_visit(story['home'], server.url)
    assert '400' in dom and current not in dom.upper()
    seen = server.last_from('HeadlessChrome')
    assert seen['serial'] == current and seen['status'] == 400 and 'revoked' in seen['verify']
    code, _body = curl_visit(story['work'] / 'alice.p12', story['vars']['certfleet_p12_password'],
                             server.pki['ca'], server.url, story['work'])
    assert code == 400
    assert 'revoked' in server.last_from('curl')['verify']


# Two identities of one CA in one Chromium NSS database, each selected for its own URL through one shared policy.
FOREIGN_POLICY = '/etc/chromium/policies/managed/00-certfleet-test-site.json'
HAND_ENTRY = json.dumps({'pattern': 'https://hand.example.invalid', 'filter': {'ISSUER': {'CN': 'Hand CA'}}})


@pytest.fixture(scope='module')
def policy_story(tmp_path_factory, collections_path):
    """dana and emil (same CA, same home) with URLs A and B; a foreign file sets URL C for emil's certificate."""
    require_tools('nginx', 'chromium', 'certutil', 'pk12util')
    from integration_support import AnsibleRunner
    base = tmp_path_factory.mktemp('chromium-policy')
    work = base / 'work'
    work.mkdir(mode=0o700)
    home = base / 'home'
    home.mkdir()
    ansible = AnsibleRunner(base / 'ansible')
    state = {'ansible': ansible, 'work': work, 'home': home,
             'vars': {'certfleet_test_dir': str(work), 'certfleet_home': str(home),
                      'certfleet_ca_passphrase': secrets.token_urlsafe(24)}}
    playbook = pathlib.Path(__file__).resolve().parent / 'playbooks' / 'chromium_policy.yml'

    def phase(name: str) -> None:
        run = ansible.run(playbook, extra_vars=dict(state['vars'], certfleet_phase=name))
        assert run.returncode == 0, run.explain()

    state['phase'] = phase
    phase('ca')
    server = MtlsServer(base / 'nginx', work / 'ca' / 'ca.pem', work / 'crl.pem', extra_ports=2)
    server.start()
    state['server'] = server
    urls = dict(zip(('dana', 'emil', 'foreign'), server.urls, strict=True))
    state['urls'] = urls
    state['vars']['certfleet_urls'] = urls
    # Someone else's policy: a file of the folder that sorts before ours (ours wins over it), and an entry added
    # by hand to our file. Both must survive every run and keep working.
    os.makedirs(os.path.dirname(POLICY), mode=0o755, exist_ok=True)
    with open(FOREIGN_POLICY, 'w', encoding='utf-8') as handle:
        json.dump({'AutoSelectCertificateForUrls': [json.dumps({
            'pattern': urls['foreign'].rstrip('/'), 'filter': {'SUBJECT': {'CN': 'Emil Example'}}})]}, handle)
    ours = json.loads(open(POLICY).read()) if os.path.exists(POLICY) else {}
    ours.setdefault('AutoSelectCertificateForUrls', []).append(HAND_ENTRY)
    with open(POLICY, 'w', encoding='utf-8') as handle:
        json.dump(ours, handle)
    try:
        yield state
    finally:
        server.stop()
        for path in (FOREIGN_POLICY, POLICY, CHROME_POLICY):
            if os.path.exists(path):
                os.unlink(path)


def _policy_entries() -> list:
    return [json.loads(text) for text in json.loads(open(POLICY).read())['AutoSelectCertificateForUrls']]


def _chromium_presents(state, who: str, expected_serial: str) -> None:
    """Headless Chromium at ``who``'s URL sends the expected certificate without asking; nginx logs its serial."""
    server = state['server']
    trust_server_ca(_chromium_db(state), server.pki['ca'])
    dom = chromium_visit(state['home'], state['urls'][who])
    shown = re.search(r'serial=([0-9A-Fa-f]+)', dom)
    assert shown and normalize_serial(shown.group(1)) == normalize_serial(expected_serial), (who, dom[-500:])
    seen = server.last_from('HeadlessChrome', port=server.ports[list(state['urls']).index(who)])
    assert (seen['status'], seen['verify'], seen['serial']) == (200, 'SUCCESS', normalize_serial(expected_serial))


def test_chromium_policy_keeps_every_identity_and_foreign_entries(policy_story):
    policy_story['phase']('deploy')
    results = json.loads((policy_story['work'] / 'policy_results-deploy.json').read_text())
    entries = _policy_entries()
    mine = {e['certfleet_identity']: e for e in entries if 'certfleet_identity' in e}
    assert mine['dana']['pattern'] == policy_story['urls']['dana'].rstrip('/')
    assert mine['dana']['filter'] == {'ISSUER': {'CN': 'certfleet policy test client CA'},
                                      'SUBJECT': {'CN': 'Dana Example', 'O': 'Example Org'}}
    assert mine['emil']['pattern'] == policy_story['urls']['emil'].rstrip('/')
    # The entry added by hand stays; the foreign file's entry is carried into our value, tagged with its file.
    assert HAND_ENTRY in json.loads(open(POLICY).read())['AutoSelectCertificateForUrls']
    carried = [e for e in entries if e.get('certfleet_carried_from') == os.path.basename(FOREIGN_POLICY)]
    assert [e['pattern'] for e in carried] == [policy_story['urls']['foreign'].rstrip('/')]
    # Chromium accepts the tagged entries: each identity is sent to its own URL (one NSS database, one CA), and
    # the foreign URL works through the carried copy (the foreign file itself is hidden by ours).
    _chromium_presents(policy_story, 'dana', results['dana']['serial'])
    _chromium_presents(policy_story, 'emil', results['emil']['serial'])
    _chromium_presents(policy_story, 'foreign', results['emil']['serial'])


def test_chromium_policy_renewing_one_identity_keeps_the_other(policy_story):
    before = json.loads((policy_story['work'] / 'policy_results-deploy.json').read_text())
    emil_entries = [e for e in _policy_entries() if e.get('certfleet_identity') == 'emil']
    policy_story['phase']('renew')
    renewed = json.loads((policy_story['work'] / 'policy_results-renew.json').read_text())['dana']
    assert renewed['serial'] != before['dana']['serial']
    assert [e for e in _policy_entries() if e.get('certfleet_identity') == 'emil'] == emil_entries
    assert len([e for e in _policy_entries() if e.get('certfleet_identity') == 'dana']) == 1
    _chromium_presents(policy_story, 'dana', renewed['serial'])
    _chromium_presents(policy_story, 'emil', before['emil']['serial'])


def test_chromium_policy_an_identity_that_leaves_takes_only_its_entries(policy_story):
    emil = json.loads((policy_story['work'] / 'policy_results-deploy.json').read_text())['emil']
    home = str(policy_story['home'])
    revoke = pathlib.Path(__file__).resolve().parents[2] / 'playbooks' / 'revoke.yml'
    run = policy_story['ansible'].run(revoke, extra_vars={
        'certfleet_revoke_identity': 'dana', 'certfleet_ca_path': str(policy_story['work'] / 'ca'),
        'certfleet_ca_passphrase': policy_story['vars']['certfleet_ca_passphrase'],
        'certfleet_crl_dest': str(policy_story['work'] / 'crl.pem'),
        'certfleet_identities': [{'identity': 'dana', 'stores': ['chromium'], 'homes': [home]},
                                 {'identity': 'emil', 'stores': ['chromium'], 'homes': [home]}]})
    assert run.returncode == 0, run.explain()
    entries = _policy_entries()
    assert [e for e in entries if e.get('certfleet_identity') == 'dana'] == []
    assert [e['pattern'] for e in entries if e.get('certfleet_identity') == 'emil'] == \
        [policy_story['urls']['emil'].rstrip('/')]
    assert HAND_ENTRY in json.loads(open(POLICY).read())['AutoSelectCertificateForUrls']
    assert any(e.get('certfleet_carried_from') for e in entries)
    # The foreign file itself was never touched.
    assert len(json.loads(open(FOREIGN_POLICY).read())['AutoSelectCertificateForUrls']) == 1
    _chromium_presents(policy_story, 'emil', emil['serial'])
    _chromium_presents(policy_story, 'foreign', emil['serial'])
