# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issuance policy: checked before anything is written (private module_utils)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field as dc_field

from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import KEY_TYPES
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import (
    normalize_subject, san_domain, subject_display,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, PolicyError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso

POLICY_KEYS = ('allowed_domains', 'required_subject', 'max_valid_days', 'allowed_key_types')


@dataclass
class Policy:
    allowed_domains: list = dc_field(default_factory=list)
    required_subject: dict = dc_field(default_factory=dict)
    max_valid_days: int | None = None
    allowed_key_types: list = dc_field(default_factory=list)

    @classmethod
    def from_params(cls, value) -> 'Policy':
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise InputError('expected a dict with %s' % ', '.join(POLICY_KEYS), 'policy')
        unknown = sorted(set(value) - set(POLICY_KEYS))
        if unknown:
            raise InputError('unknown setting %s (known: %s)' % (', '.join(unknown), ', '.join(POLICY_KEYS)),
                             'policy.%s' % unknown[0])
        domains = value.get('allowed_domains') or []
        if not isinstance(domains, list) or not all(isinstance(d, str) and d.strip() for d in domains):
            raise InputError('expected a list of domain names', 'policy.allowed_domains')
        key_types = value.get('allowed_key_types') or []
        if not isinstance(key_types, list):
            raise InputError('expected a list of key types', 'policy.allowed_key_types')
        for key_type in key_types:
            if key_type not in KEY_TYPES:
                raise InputError('unknown key type %r (use %s)' % (key_type, ', '.join(KEY_TYPES)),
                                 'policy.allowed_key_types')
        max_days = value.get('max_valid_days')
        if max_days is not None:
            try:
                max_days = int(max_days)
            except (TypeError, ValueError):
                raise InputError('expected a whole number of days, got %r' % (max_days,), 'policy.max_valid_days')
            if max_days <= 0:
                raise InputError('must be positive, got %d' % max_days, 'policy.max_valid_days')
        return cls(
            allowed_domains=sorted({d.strip().lower().lstrip('.').lstrip('*.') for d in domains}),
            required_subject=normalize_subject(value.get('required_subject') or {}, 'policy.required_subject'),
            max_valid_days=max_days,
            allowed_key_types=sorted(set(key_types)),
        )

    def to_dict(self) -> dict:
        return {
            'allowed_domains': list(self.allowed_domains),
            'required_subject': {k: list(v) for k, v in self.required_subject.items()},
            'max_valid_days': self.max_valid_days,
            'allowed_key_types': list(self.allowed_key_types),
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> 'Policy':
        data = data or {}
        return cls(allowed_domains=list(data.get('allowed_domains') or []),
                   required_subject={k: list(v) for k, v in (data.get('required_subject') or {}).items()},
                   max_valid_days=data.get('max_valid_days'),
                   allowed_key_types=list(data.get('allowed_key_types') or []))

    def display(self) -> dict:
        shown = self.to_dict()
        shown['required_subject'] = subject_display(self.required_subject)
        return shown

    # -- checks --------------------------------------------------------------------------------------------
    def complete_subject(self, subject: dict, field: str = 'subject') -> dict:
        """Fill attributes the policy fixes; refuse values that differ from the registered ones."""
        result = {k: list(v) for k, v in subject.items()}
        for short, required in self.required_subject.items():
            given = result.get(short)
            if given is None:
                result[short] = list(required)
            elif given != required:
                raise PolicyError('%r is not the registered value %r (policy.required_subject)'
                                  % (given[0] if len(given) == 1 else given,
                                     required[0] if len(required) == 1 else required),
                                  '%s.%s' % (field, short))
        return result

    def domain_allowed(self, domain: str) -> bool:
        if not self.allowed_domains:
            return True
        domain = domain.lower()
        return any(domain == allowed or domain.endswith('.' + allowed) for allowed in self.allowed_domains)

    def check_names(self, subject: dict, sans: list, email: str | None = None,
                    subject_field: str = 'subject') -> None:
        for value in subject.get('emailAddress', []):
            domain = value.rsplit('@', 1)[1]
            if not self.domain_allowed(domain):
                raise PolicyError('e-mail domain %r is not allowed (policy.allowed_domains: %s)'
                                  % (domain, ', '.join(self.allowed_domains)), '%s.emailAddress' % subject_field)
        for san in sans:
            domain = san_domain(san)
            if domain is None or self.domain_allowed(domain):
                continue
            field = 'email' if email and san == 'email:%s' % email else 'sans'
            raise PolicyError('domain %r of %s is not allowed (policy.allowed_domains: %s)'
                              % (domain, san, ', '.join(self.allowed_domains)), field)

    def check_key_type(self, key_type: str, field: str = 'key_type') -> None:
        if self.allowed_key_types and key_type not in self.allowed_key_types:
            raise PolicyError('key type %s is not allowed (policy.allowed_key_types: %s)'
                              % (key_type, ', '.join(self.allowed_key_types)), field)

    def check_validity(self, valid_days: int, not_after: datetime.datetime,
                       ca_not_after: datetime.datetime, field: str = 'valid_days') -> None:
        if self.max_valid_days is not None and valid_days > self.max_valid_days:
            raise PolicyError('%d days is longer than policy.max_valid_days (%d)' % (valid_days, self.max_valid_days),
                              field)
        if not_after > ca_not_after:
            raise PolicyError('%d days would end at %s, after the CA certificate expires (%s)'
                              % (valid_days, to_iso(not_after), to_iso(ca_not_after)), field)
