"""Password hashing with argon2id, always off the event loop.

The cost is configurable (``[passwords]``); hashes made with another cost
still verify, and are re-hashed at the next successful check. Passwords are
never logged or returned; verification of an unknown user still spends the
time of a real check, so that timing does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from . import password_policy
from .config import PasswordConfig


class Passwords:
    def __init__(self, cfg: PasswordConfig, executor: ThreadPoolExecutor | None = None):
        self.cfg = cfg
        self._hasher = PasswordHasher(
            time_cost=cfg.time_cost,
            memory_cost=cfg.memory_cost_kib,
            parallelism=cfg.parallelism,
            type=Type.ID,
        )
        self._executor = executor or ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="argon2"
        )
        self._dummy = self._hasher.hash(os.urandom(16).hex())

    def check_policy(self, password: str) -> None:
        """The password policy (``gateway.password_policy``)."""
        password_policy.check(self.cfg, password)

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str, *, policy: bool = True) -> str:
        """An argon2 hash of a password the policy allows (``policy=False``: of one that
        is already set, re-hashed at a new cost)."""
        if policy:
            self.check_policy(password)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        """Constant-work check; an unknown user (stored None) costs the same and fails."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
