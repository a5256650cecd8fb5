# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Optional dependency checks (private module_utils)."""

from __future__ import annotations

import traceback

CRYPTOGRAPHY_MINIMUM = '42.0'

try:
    import cryptography
    CRYPTOGRAPHY_VERSION = cryptography.__version__
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    CRYPTOGRAPHY_VERSION = None
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


def cryptography_ok() -> bool:
    if CRYPTOGRAPHY_VERSION is None:
        return False
    major = int(CRYPTOGRAPHY_VERSION.split('.', maxsplit=1)[0])
    return major >= int(CRYPTOGRAPHY_MINIMUM.split('.', maxsplit=1)[0])
