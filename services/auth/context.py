"""What every request handler of the auth service works with, built once by ``main.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.settings import Settings
from common.tokens import TokenCipher
from services.auth.identity import IdentityClient


@dataclass
class AuthContext:
    settings: Settings
    pool: ConnectionPool[Connection[Any]]
    identity: IdentityClient
    cipher: TokenCipher
