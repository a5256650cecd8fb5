# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The windows_store role, checked without Windows: syntax, lint, argument spec and variable logic.

No Windows host is available here. What runs on the controller:

- the role's argument spec, with good and bad variables, through ``ansible.builtin.validate_argument_spec`` (always)
  and through the role's own validation task (needs ``ansible.windows``, because loading the role resolves its
  modules);
- the plan (tasks/plan.yml, no Windows module in it) with fake facts: the encryption decision per Windows build and
  the refusals before any store is touched;
- the computed variables of vars/main.yml with fake ``win_certificate_info`` results: which certificates are the new
  one, superseded, chain or foreign, the accounts and stores, and the Firefox policy content;
- ``ansible-playbook --syntax-check`` of a playbook using the role and importing every task file (needs
  ``ansible.windows``), and ``ansible-lint`` on the role and the molecule scenario (needs ansible-lint too).

The real imports are exercised by extensions/molecule/windows against a Windows host.

Speed: every case is a separate ansible-playbook (or ansible-doc, ansible-lint) run of a few seconds, mostly one
process at a time. The runs of all selected cases start together at the beginning of the module (as in
test_targets.py), each in its own temp folder, and each test waits for its own run and asserts on it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import pathlib
import shutil
import subprocess

import pytest
from integration_support import BIN, ROOT, AnsibleRunner

ROLE = ROOT / 'roles' / 'windows_store'
SPEC = ROLE / 'meta' / 'argument_specs.yml'
MOLECULE = ROOT / 'extensions' / 'molecule' / 'windows'
SECRET = 'Pfx-Secret-3b7e1c'

THUMB_NEW = 'A' * 40
THUMB_OLD = 'B' * 40
THUMB_CHAIN = 'C' * 40
THUMB_SAME_NAME_OTHER_CA = 'D' * 40
THUMB_FOREIGN = 'E' * 40
THUMB_OLDER = 'F' * 40
CA_DN = 'CN=Certfleet Test Client CA, O=Example Org, C=DE'
AKI = {'critical': False, 'field': 'Authority Key Identifier', 'value': 'KeyID=2b d0 69 47'}
OTHER_AKI = {'critical': False, 'field': 'Authority Key Identifier', 'value': 'KeyID=99 99 99 99'}


def certificate(thumbprint, issuer=CA_DN, key=True, aki='this CA', is_ca=None):
    """One certificate as win_certificate_info reports it; aki is 'this CA', another extension dict, or None."""
    extension = AKI if aki == 'this CA' else aki
    entry = {'thumbprint': thumbprint, 'issuer': issuer, 'subject': 'CN=%s' % thumbprint[:4],
             'has_private_key': key, 'extensions': [extension] if extension else []}
    if is_ca is not None:
        entry['is_ca'] = is_ca
    return entry


# What win_certificate_info returns for CurrentUser\My after the import: the new certificate, the chain CA the PFX
# carried, an older certificate of the CA, one without its key, a certificate of another CA with the same name (other
# AKI) and one of a foreign CA.
MY_AFTER_IMPORT = {'exists': True, 'certificates': [
    certificate(THUMB_NEW),
    certificate(THUMB_OLD),
    certificate(THUMB_OLDER, key=False),
    certificate(THUMB_CHAIN, issuer=CA_DN, key=False, is_ca=True),
    certificate(THUMB_SAME_NAME_OTHER_CA, aki=OTHER_AKI),
    certificate(THUMB_FOREIGN, issuer='CN=Foreign CA', aki=None),
]}
PROBE = {'changed': True, 'thumbprints': [THUMB_NEW.lower(), THUMB_CHAIN]}

PLAN_PLAYBOOK = '''---
- name: The plan and the computed variables of certfleet.pki.windows_store
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The plan runs
      ansible.builtin.include_role:
        name: certfleet.pki.windows_store
        tasks_from: plan
        public: true

    - name: The computed values are written for the test
      ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0600"
        content: "{{ values | to_nice_json }}"
      vars:
        values:
          encryption: "{{ windows_store_pkcs12_encryption }}"
          label: "{{ _windows_store_label }}"
          ca_label: "{{ _windows_store_ca_label }}"
          location: "{{ _windows_store_location_name }}"
          ca_location: "{{ _windows_store_ca_location_name }}"
          become_user: "{{ _windows_store_become_user }}"
          ca_become_user: "{{ _windows_store_ca_become_user }}"
          key_storage: "{{ _windows_store_key_storage }}"
          expected: "{{ _windows_store_expected_thumbprint }}"
          already_present: "{{ _windows_store_already_present }}"
          new: "{{ _windows_store_new_thumbprint }}"
          chain: "{{ _windows_store_chain_in_my }}"
          issued_by_ca: "{{ _windows_store_issued_by_ca }}"
          refused: "{{ _windows_store_refused_removals }}"
          to_remove: "{{ _windows_store_to_remove }}"
          firefox_registry_json: "{{ _windows_store_firefox_preferences | to_json(sort_keys=true) }}"
          firefox_policies: "{{ _windows_store_firefox_policies }}"

    - name: The policies.json template is rendered
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/firefox_policies.json.j2"
        dest: "{{ out }}.policies.json"
        mode: "0644"
'''

SPEC_PLAYBOOK = '''---
- name: The argument spec of certfleet.pki.windows_store, loaded from meta/argument_specs.yml
  hosts: localhost
  gather_facts: false
  vars:
    spec: "{{ lookup('ansible.builtin.file', spec_file) | from_yaml }}"
  tasks:
    - name: The variables are valid for the entry point
      ansible.builtin.validate_argument_spec:
        argument_spec: "{{ spec.argument_specs[entry_point].options }}"
        provided_arguments: "{{ provided }}"
'''

ROLE_VALIDATION_PLAYBOOK = '''---
- name: Only the role's own argument validation runs (the tag selects its validation task alone)
  hosts: localhost
  gather_facts: false
  roles:
    - role: certfleet.pki.windows_store
'''

SYNTAX_PLAYBOOK = '''---
- name: A playbook using the role
  hosts: windows
  gather_facts: false
  roles:
    - role: certfleet.pki.windows_store
      vars:
        windows_store_pfx_path: C:\\ProgramData\\certfleet\\alice.pfx
        windows_store_pfx_password: "{{ vault_pfx_password }}"
        windows_store_user: alice
        windows_store_ca_path: C:\\ProgramData\\certfleet\\ca.pem
        windows_store_firefox_enterprise_policy: true

- name: Every task file of the role, imported statically so each is parsed
  hosts: windows
  gather_facts: false
  tasks:
    - name: The store tasks parse
      ansible.builtin.import_role:
        name: certfleet.pki.windows_store
        tasks_from: store
    - name: The Firefox policy tasks parse
      ansible.builtin.import_role:
        name: certfleet.pki.windows_store
        tasks_from: firefox_os_store
    - name: The encryption entry point parses
      ansible.builtin.import_role:
        name: certfleet.pki.windows_store
        tasks_from: encryption
'''

GOOD_MAIN = {
    'windows_store_pfx_path': 'C:\\ProgramData\\certfleet\\alice.pfx',
    'windows_store_pfx_password': SECRET,
    'windows_store_user': 'alice',
    'windows_store_become_password': SECRET + '-become',
    'windows_store_location': 'current_user',
    'windows_store_key_exportable': False,
    'windows_store_thumbprint': THUMB_NEW.lower(),
    'windows_store_remove_thumbprints': [THUMB_OLD],
    'windows_store_encryption': 'auto',
    'windows_store_pfx_encryption': 'legacy',
    'windows_store_firefox_enterprise_policy': True,
    'windows_store_firefox_preferences': {
        'security.default_personal_cert': {'Value': 'Select Automatically', 'Status': 'locked'},
    },
}


@functools.cache
def ansible_windows_available(ansible) -> bool:
    """Whether ansible-playbook of this venv, with the runner's collection path, finds ansible.windows (asked once)."""
    completed = subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'list', 'ansible.windows', '--format',
                                'json'], env=ansible.env(), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return False
    try:
        found = json.loads(completed.stdout or '{}')
    except ValueError:
        return False
    return any('ansible.windows' in collections for collections in found.values())


@pytest.fixture
def requires_ansible_windows(windows_static_runner):
    if not ansible_windows_available(windows_static_runner):
        pytest.skip('ansible.windows is not installed where this venv\'s ansible-playbook finds collections; loading '
                    'the role resolves its ansible.windows modules. Install it with `pip install "ansible>=12,<13"` '
                    '(bundles ansible.windows) or `ansible-galaxy collection install ansible.windows`.')


# What each test runs, by test function: called with a runner and a temp folder of its own plus the test's parameters,
# it returns what the test asserts on. The runs of all selected tests start at once (started_runs).
RUNS = {}


def runs_for(test):
    def register(function):
        RUNS[test] = function
        return function
    return register


@pytest.fixture(scope='module')
def windows_static_runner(tmp_path_factory, collections_path):
    return AnsibleRunner(tmp_path_factory.mktemp('windows-static-probe') / 'ansible')


@pytest.fixture(scope='module')
def started_runs(request, tmp_path_factory, windows_static_runner):
    """Start the run of every selected test of this module at once (the linter, the longest, first)."""
    items = [item for item in request.session.items
             if item.module is request.module and item.originalname in RUNS
             and ('requires_ansible_windows' not in item.fixturenames
                  or ansible_windows_available(windows_static_runner))]
    items.sort(key=lambda item: item.originalname != 'test_ansible_lint')
    workers = max(1, min(len(items), (os.cpu_count() or 2) + 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        futures = {}
        for item in items:
            base = tmp_path_factory.mktemp('windows-static')
            params = dict(item.callspec.params) if hasattr(item, 'callspec') else {}
            futures[item.nodeid] = executor.submit(RUNS[item.originalname], AnsibleRunner(base / 'ansible'), base,
                                                   **params)
        yield futures


@pytest.fixture
def outcome(request, started_runs):
    """What this test's run returned (it waits for it)."""
    return started_runs[request.node.nodeid].result()


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    return path


def run_plan(ansible, tmp_path, **extra):
    playbook = write(tmp_path / 'plan.yml', PLAN_PLAYBOOK)
    out = tmp_path / 'values.json'
    variables = {'out': str(out), 'role_dir': str(ROLE), 'windows_store_pfx_path': 'C:\\x.pfx',
                 'windows_store_pfx_password': SECRET, 'windows_store_user': 'alice',
                 '_windows_store_os_family': 'Windows', '_windows_store_distribution_version': '10.0.20348.0'}
    variables.update(extra)
    run = ansible.run(playbook, extra_vars=variables)
    assert SECRET not in run.output
    values = json.loads(out.read_text()) if run.returncode == 0 else None
    return run, values


@runs_for('test_argument_spec_accepts_good_variables')
def run_spec_good(ansible, tmp_path, entry_point, provided):
    playbook = write(tmp_path / 'spec.yml', SPEC_PLAYBOOK)
    return ansible.run(playbook, extra_vars={'spec_file': str(SPEC), 'entry_point': entry_point,
                                             'provided': provided})


@runs_for('test_argument_spec_rejects_bad_variables')
def run_spec_bad(ansible, tmp_path, changes, message):
    provided = {key: value for key, value in {**GOOD_MAIN, **changes}.items() if value is not None}
    playbook = write(tmp_path / 'spec.yml', SPEC_PLAYBOOK)
    return ansible.run(playbook, extra_vars={'spec_file': str(SPEC), 'entry_point': 'main', 'provided': provided})


@runs_for('test_role_validates_its_arguments')
def run_role_validation(ansible, tmp_path, changes, message):
    provided = {key: value for key, value in {**GOOD_MAIN, **changes}.items() if value is not None}
    playbook = write(tmp_path / 'role.yml', ROLE_VALIDATION_PLAYBOOK)
    # The role's validation task carries the tag `always`; with a tag nothing else carries, it runs alone.
    return ansible.run(playbook, extra_vars=provided, args=['--tags', 'certfleet_validation_only'])


@runs_for('test_plan_decides_the_encryption_from_the_build')
def run_plan_encryption(ansible, tmp_path, version, requested, expected):
    return run_plan(ansible, tmp_path, _windows_store_distribution_version=version,
                    windows_store_encryption=requested)


@runs_for('test_plan_refuses_before_any_store_changes')
def run_plan_refusal(ansible, tmp_path, extra, message):
    return run_plan(ansible, tmp_path, **extra)


@runs_for('test_accounts_and_stores')
def run_plan_accounts(ansible, tmp_path, extra, expected):
    return run_plan(ansible, tmp_path, **extra)


@runs_for('test_import_is_skipped_when_the_certificate_is_already_there')
def run_plan_already_there(ansible, tmp_path, before, thumbprint, probe, present):
    extra = {'_windows_store_my_before': {'certificates': before}, 'windows_store_thumbprint': thumbprint}
    if probe:
        extra['_windows_store_probe'] = probe
    return run_plan(ansible, tmp_path, **extra)


# --- The filter's documentation -----------------------------------------------------------------------------------

@runs_for('test_filter_documentation_renders')
def run_filter_documentation(ansible, tmp_path):
    return subprocess.run([str(BIN / 'ansible-doc'), '-t', 'filter', 'certfleet.pki.pkcs12_encryption_for'],
                          env=ansible.env(), capture_output=True, text=True, check=False)


def test_filter_documentation_renders(outcome):
    completed = outcome
    assert completed.returncode == 0, completed.stderr
    assert '10.0.17763' in completed.stdout and 'legacy' in completed.stdout


# --- Argument spec --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(('entry_point', 'provided'), [
    ('main', GOOD_MAIN),
    ('main', {'windows_store_pfx_path': 'C:\\m.pfx', 'windows_store_pfx_password': SECRET,
              'windows_store_location': 'local_machine', 'windows_store_key_storage': 'machine',
              'windows_store_ca_location': 'local_machine', 'windows_store_become': 'yes'}),
    ('encryption', {'windows_store_encryption': 'legacy'}),
    ('firefox_os_store', {'windows_store_firefox_osclientcerts_autoload': True,
                          'windows_store_firefox_preferences': {}}),
])
def test_argument_spec_accepts_good_variables(outcome, entry_point, provided):
    run = outcome
    assert run.returncode == 0, run.explain()
    assert SECRET not in run.output


@pytest.mark.parametrize(('changes', 'message'), [
    ({'windows_store_pfx_path': None}, 'missing required arguments: windows_store_pfx_path'),
    ({'windows_store_pfx_password': None}, 'missing required arguments: windows_store_pfx_password'),
    ({'windows_store_location': 'machine'}, 'windows_store_location must be one of: current_user, local_machine'),
    ({'windows_store_ca_location': 'Root'}, 'windows_store_ca_location must be one of'),
    ({'windows_store_encryption': 'aes'}, 'windows_store_encryption must be one of: auto, modern, legacy'),
    ({'windows_store_pfx_encryption': 'pbes2'}, 'windows_store_pfx_encryption must be one of'),
    ({'windows_store_key_storage': 'disk'}, 'windows_store_key_storage must be one of'),
    ({'windows_store_key_exportable': 'maybe'}, "'windows_store_key_exportable' is of type"),
    ({'windows_store_remove_thumbprints': {'a': 1}}, "'windows_store_remove_thumbprints' is of type"),
    ({'windows_store_firefox_preferences': ['security.osclientcerts.autoload']},
     "'windows_store_firefox_preferences' is of type"),
])
def test_argument_spec_rejects_bad_variables(outcome, changes, message):
    run = outcome
    assert run.returncode != 0
    assert 'Validation of arguments failed' in run.output
    assert message in run.output, run.explain()
    assert SECRET not in run.output


@pytest.mark.usefixtures('requires_ansible_windows')
@pytest.mark.parametrize(('changes', 'message'), [
    ({}, None),
    ({'windows_store_location': 'local_machine', 'windows_store_user': ''}, None),
    ({'windows_store_pfx_path': None}, 'missing required arguments: windows_store_pfx_path'),
    ({'windows_store_location': 'CurrentUser'}, 'windows_store_location must be one of'),
    ({'windows_store_remove_superseded': 'sometimes'}, "'windows_store_remove_superseded' is of type"),
])
def test_role_validates_its_arguments(outcome, changes, message):
    run = outcome
    if message is None:
        assert run.returncode == 0, run.explain()
        assert "Validating arguments against arg spec 'main'" in run.output
    else:
        assert run.returncode != 0
        assert message in run.output, run.explain()
    assert SECRET not in run.output


# --- The plan: encryption decision and refusals ----------------------------------------------------------------

@pytest.mark.parametrize(('version', 'requested', 'expected'), [
    ('6.3.9600.0', 'auto', 'legacy'),
    ('10.0.14393.0', 'auto', 'legacy'),
    ('10.0.17134.0', 'auto', 'legacy'),
    ('10.0.17763.0', 'auto', 'modern'),
    ('10.0.20348.0', 'auto', 'modern'),
    ('10.0.26100.1', 'auto', 'modern'),
    ('10.0.14393.0', 'modern', 'modern'),
    ('10.0.20348.0', 'legacy', 'legacy'),
])
def test_plan_decides_the_encryption_from_the_build(outcome, version, requested, expected):
    run, values = outcome
    assert run.returncode == 0, run.explain()
    assert values['encryption'] == expected


@pytest.mark.parametrize(('extra', 'message'), [
    ({'_windows_store_os_family': 'Debian', '_windows_store_distribution_version': '12'},
     'manages the Windows certificate stores'),
    ({'windows_store_user': ''}, 'windows_store_user is required'),
    ({'windows_store_thumbprint': 'ABC'}, 'Not a certificate thumbprint'),
    ({'windows_store_remove_thumbprints': [THUMB_OLD, 'G' * 40]}, 'Not a certificate thumbprint'),
    ({'_windows_store_distribution_version': '10.0.14393.0', 'windows_store_pfx_encryption': 'modern'},
     'cannot open AES (modern)'),
    ({'_windows_store_distribution_version': 'unknown'}, 'cannot read the Windows version'),
])
def test_plan_refuses_before_any_store_changes(outcome, extra, message):
    run, _values = outcome
    assert run.returncode != 0
    assert message in run.output, run.explain()


@pytest.mark.parametrize(('extra', 'expected'), [
    ({}, {'label': 'CurrentUser\\My of alice', 'location': 'CurrentUser', 'become_user': 'alice',
          'key_storage': 'user', 'ca_label': 'LocalMachine\\Root', 'ca_location': 'LocalMachine',
          'ca_become_user': 'SYSTEM'}),
    ({'windows_store_location': 'local_machine', 'windows_store_user': ''},
     {'label': 'LocalMachine\\My', 'location': 'LocalMachine', 'become_user': 'SYSTEM', 'key_storage': 'machine',
      'ca_become_user': 'SYSTEM'}),
    ({'windows_store_ca_location': 'current_user'},
     {'ca_label': 'CurrentUser\\Root of alice', 'ca_location': 'CurrentUser', 'ca_become_user': 'alice'}),
    ({'windows_store_become_user': 'EXAMPLE\\svc-pki', 'windows_store_key_storage': 'default'},
     {'become_user': 'EXAMPLE\\svc-pki', 'key_storage': 'default'}),
])
def test_accounts_and_stores(outcome, extra, expected):
    run, values = outcome
    assert run.returncode == 0, run.explain()
    assert {key: values[key] for key in expected} == expected


# --- Which certificates are new, chain, superseded or foreign ------------------------------------------------------

@runs_for('test_superseded_chain_and_foreign_certificates_are_told_apart')
def run_superseded_chain_and_foreign(ansible, tmp_path):
    return run_plan(ansible, tmp_path, _windows_store_probe=PROBE, _windows_store_my=MY_AFTER_IMPORT,
                    windows_store_remove_thumbprints=[THUMB_FOREIGN.lower(), 'ff:' * 19 + 'ff'])


def test_superseded_chain_and_foreign_certificates_are_told_apart(outcome):
    run, values = outcome
    assert run.returncode == 0, run.explain()
    assert values['new'] == THUMB_NEW                      # from the PFX, with its key
    assert values['chain'] == [THUMB_CHAIN]                # from the PFX, no key
    # Same issuer name and AKI, not a CA, not the new one; another CA with the same name is not "this CA".
    assert values['issued_by_ca'] == [THUMB_OLD, THUMB_OLDER]
    assert values['refused'] == [THUMB_FOREIGN]
    assert values['to_remove'] == [THUMB_OLD, THUMB_OLDER, THUMB_FOREIGN]  # the run stops on `refused` first


@runs_for('test_removal_of_the_new_certificate_is_refused')
def run_removal_of_the_new_certificate(ansible, tmp_path):
    return run_plan(ansible, tmp_path, _windows_store_probe=PROBE, _windows_store_my=MY_AFTER_IMPORT,
                    windows_store_remove_thumbprints=[THUMB_NEW])


def test_removal_of_the_new_certificate_is_refused(outcome):
    run, values = outcome
    assert run.returncode == 0, run.explain()
    assert values['refused'] == [THUMB_NEW]


@runs_for('test_only_requested_thumbprints_when_superseded_removal_is_off')
def run_only_requested_thumbprints(ansible, tmp_path):
    return run_plan(ansible, tmp_path, _windows_store_probe=PROBE, _windows_store_my=MY_AFTER_IMPORT,
                    windows_store_remove_superseded=False, windows_store_remove_thumbprints=[THUMB_OLDER],
                    windows_store_thumbprint=':'.join([THUMB_NEW[i:i + 2] for i in range(0, 40, 2)]).lower())


def test_only_requested_thumbprints_when_superseded_removal_is_off(outcome):
    run, values = outcome
    assert run.returncode == 0, run.explain()
    assert values['expected'] == THUMB_NEW
    assert values['new'] == THUMB_NEW
    assert values['refused'] == []
    assert values['to_remove'] == [THUMB_OLDER]


@pytest.mark.parametrize(('before', 'thumbprint', 'probe', 'present'), [
    ([certificate(THUMB_NEW)], THUMB_NEW, None, True),                        # rerun with the thumbprint: no PFX opened
    ([certificate(THUMB_NEW, key=False)], THUMB_NEW, None, False),            # there, but without its key
    ([certificate(THUMB_OLD)], THUMB_NEW, None, False),                       # first run
    ([certificate(THUMB_NEW)], '', PROBE, True),                              # rerun without the thumbprint
    ([certificate(THUMB_OLD)], '', PROBE, False),
])
def test_import_is_skipped_when_the_certificate_is_already_there(outcome, before, thumbprint, probe, present):
    run, values = outcome
    assert run.returncode == 0, run.explain()
    assert values['already_present'] is present


# --- Firefox policies ---------------------------------------------------------------------------------------

@runs_for('test_firefox_policies_for_the_registry_and_policies_json')
def run_firefox_policies(ansible, tmp_path):
    run, values = run_plan(ansible, tmp_path, windows_store_firefox_preferences={
        'security.default_personal_cert': {'Value': 'Select Automatically', 'Status': 'locked'}})
    rendered = tmp_path / 'values.json.policies.json'
    return run, values, (json.loads(rendered.read_text()) if rendered.exists() else None)


def test_firefox_policies_for_the_registry_and_policies_json(outcome):
    run, values, policies = outcome
    assert run.returncode == 0, run.explain()
    preferences = {
        'security.default_personal_cert': {'Status': 'locked', 'Value': 'Select Automatically'},
        'security.osclientcerts.autoload': {'Status': 'locked', 'Value': True},
    }
    # The REG_MULTI_SZ value of HKLM\SOFTWARE\Policies\Mozilla\Firefox\Preferences: stable JSON (sorted keys).
    assert values['firefox_registry_json'] == json.dumps(preferences, sort_keys=True)
    assert policies == {'policies': {'Certificates': {'ImportEnterpriseRoots': True}, 'Preferences': preferences}}


@runs_for('test_firefox_policies_can_be_reduced')
def run_firefox_policies_reduced(ansible, tmp_path):
    return run_plan(ansible, tmp_path, windows_store_firefox_osclientcerts_autoload=False,
                    windows_store_firefox_import_enterprise_roots=True)


def test_firefox_policies_can_be_reduced(outcome):
    run, values = outcome
    assert run.returncode == 0, run.explain()
    assert values['firefox_policies'] == {'Certificates': {'ImportEnterpriseRoots': True}}


# --- Syntax and lint --------------------------------------------------------------------------------------

@runs_for('test_syntax_check')
def run_syntax_check(ansible, tmp_path):
    playbook = write(tmp_path / 'site.yml', SYNTAX_PLAYBOOK)
    inventory = write(tmp_path / 'hosts.ini', 'windows-host ansible_connection=winrm ansible_host=192.0.2.10\n')
    return ansible.run(playbook, inventory=inventory, args=['--syntax-check'])


@pytest.mark.usefixtures('requires_ansible_windows')
def test_syntax_check(outcome):
    run = outcome
    assert run.returncode == 0, run.explain()


@runs_for('test_molecule_playbooks_syntax')
def run_molecule_playbooks_syntax(ansible, tmp_path):
    inventory = MOLECULE / 'inventory.example.yml'
    return [ansible.run(MOLECULE / name, inventory=inventory, args=['--syntax-check'])
            for name in ('prepare.yml', 'converge.yml', 'verify.yml', 'cleanup.yml')]


@pytest.mark.usefixtures('requires_ansible_windows')
def test_molecule_playbooks_syntax(outcome):
    for run in outcome:
        assert run.returncode == 0, run.explain()


def ansible_lint_command():
    lint = BIN / 'ansible-lint'
    return str(lint) if lint.exists() else shutil.which('ansible-lint')


@runs_for('test_ansible_lint')
def run_ansible_lint(ansible, tmp_path):
    if not ansible_lint_command():
        return None
    # The example inventory is a YAML inventory, which ansible-lint would take for a playbook by its place.
    # (--exclude takes several values: it comes last, after the paths to lint.)
    return subprocess.run([ansible_lint_command(), 'roles/windows_store', 'extensions/molecule/windows', '--offline',
                           '--nocolor', '--profile', 'production',
                           '--exclude', 'extensions/molecule/windows/inventory.example.yml'],
                          cwd=ROOT, env=ansible.env(), capture_output=True, text=True, check=False, timeout=900)


@pytest.mark.usefixtures('requires_ansible_windows')
def test_ansible_lint(outcome):
    if not ansible_lint_command():
        pytest.skip('ansible-lint is not installed (pip install ansible-lint)')
    completed = outcome
    assert completed.returncode == 0, completed.stdout[-8000:] + completed.stderr[-4000:]
