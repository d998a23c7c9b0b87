"""What a password must be, checked on every path that sets one (SCIM, SCIM 1.1, Bulk,
SOAP, JIT, ``gateway import``, the bootstrap administrator): ``[passwords]``
``min_length``, ``max_length``, ``min_classes`` (how many of lower-case letters,
upper-case letters, digits and other characters it holds) and ``pattern``, a
regular expression the whole password must match; ``pattern = "wso2"`` is WSO2's
default (``^[\\S]{5,30}$``).

A password that breaks the policy is a SCIM 400 ``invalidValue``, and over SOAP
WSO2's coded fault (``30003 - InvalidPassword ...``). The pattern is the
operator's and runs on at most ``max_length`` (at most 1,024) characters.
"""

from __future__ import annotations

import re
from functools import cache

from .config import PasswordConfig
from .errors import ConfigError, InvalidValue

PRESETS = {"wso2": r"^[\S]{5,30}$"}
LIMIT = 1024  # no password is longer, whatever max_length says
MAX_HISTORY = 24  # each remembered password costs an argon2 verification per change


class PasswordPolicyError(InvalidValue):
    wso2_code = "30003 - InvalidPassword"


def _classes(password: str) -> int:
    return sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                any(c.isdigit() for c in password),
                any(not c.isalnum() for c in password)))


@cache
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(PRESETS.get(pattern, pattern))


def check_config(cfg: PasswordConfig) -> None:
    if not 1 <= cfg.min_length <= cfg.max_length <= LIMIT:
        raise ConfigError(f"passwords: 1 <= min_length <= max_length <= {LIMIT}")
    if not 0 <= cfg.min_classes <= 4:
        raise ConfigError("passwords.min_classes is 0 to 4")
    if cfg.max_age_days < 0:
        raise ConfigError("passwords.max_age_days is 0 (never) or more")
    if not 0 <= cfg.history <= MAX_HISTORY:
        raise ConfigError(f"passwords.history is 0 (none) to {MAX_HISTORY}")
    if cfg.pattern is not None:
        try:
            _compiled(cfg.pattern)
        except re.error as exc:
            raise ConfigError(f"passwords.pattern is not a regular expression: {exc}") from None


def check(cfg: PasswordConfig, password: str) -> None:
    """PasswordPolicyError unless ``password`` is one the policy allows."""
    if not isinstance(password, str) or len(password) < cfg.min_length:
        raise PasswordPolicyError(f"The password must have at least {cfg.min_length} "
                                  "characters")
    if len(password) > min(cfg.max_length, LIMIT):
        raise PasswordPolicyError(f"The password is longer than {min(cfg.max_length, LIMIT)} "
                                  "characters")
    if _classes(password) < cfg.min_classes:
        raise PasswordPolicyError(
            f"The password must hold at least {cfg.min_classes} of: lower-case letters, "
            "upper-case letters, digits, other characters")
    if cfg.pattern is not None and _compiled(cfg.pattern).fullmatch(password) is None:
        shown = PRESETS.get(cfg.pattern, cfg.pattern)
        raise PasswordPolicyError("Credential not valid. Credential must be a non null string "
                                  f"with following format, {shown}")
