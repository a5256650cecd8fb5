# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The notice_smtp lookup: the playbook's settings win, the controller's CERTFLEET_SMTP_* fill the rest, and the
names are the module's own."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.certfleet.pki.plugins.lookup.notice_smtp import LookupModule
from ansible_collections.certfleet.pki.plugins.module_utils.notify.smtp import SETTINGS, env_name
from ansible_collections.certfleet.pki.plugins.modules.client_certificate_notice import SMTP_SPEC


@pytest.fixture
def notice_smtp():
    return LookupModule()


def test_the_environment_fills_what_the_playbook_leaves_out(notice_smtp, monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.setenv('CERTFLEET_SMTP_HOST', 'env.example.org')
    monkeypatch.setenv('CERTFLEET_SMTP_PASSWORD', 'from-the-credential')
    monkeypatch.setenv('CERTFLEET_SMTP_TO', 'officer@example.org,deputy@example.org')
    monkeypatch.setenv('CERTFLEET_SMTP_PORT', '')  # an empty variable is no setting
    assert notice_smtp.run([], {}, settings={'host': 'mail.example.org', 'port': None, 'from': 'ca@example.org'}) \
        == [{'host': 'mail.example.org', 'password': 'from-the-credential', 'from': 'ca@example.org',
             'to': 'officer@example.org,deputy@example.org'}]
    assert notice_smtp.run([], {}) == [{'host': 'env.example.org', 'password': 'from-the-credential',
                                        'to': 'officer@example.org,deputy@example.org'}]


def test_terms_other_options_and_a_non_dict_are_refused(notice_smtp):
    with pytest.raises(AnsibleLookupError, match='takes no terms'):
        notice_smtp.run(['host'], {})
    with pytest.raises(AnsibleLookupError, match='takes only settings=, not smtp'):
        notice_smtp.run([], {}, smtp={})
    with pytest.raises(AnsibleLookupError, match='settings must be a dict'):
        notice_smtp.run([], {}, settings='mail.example.org')


def test_every_environment_fallback_of_the_module_is_a_setting_the_lookup_reads():
    fallbacks = {spec['fallback'][1][0] for spec in SMTP_SPEC.values() if 'fallback' in spec}
    assert fallbacks <= {env_name(name) for name in SETTINGS}
    assert 'CERTFLEET_SMTP_PASSWORD' in fallbacks
