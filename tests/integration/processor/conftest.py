"""What the processor's integration tests share: a pool, a mailbox, stored raw mails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

from common.db import create_pool
from tests.support.infra import TestDatabase
from tests.support.mailboxes import insert_mailbox


@pytest.fixture
def pool(clean_database: TestDatabase) -> Iterator[ConnectionPool]:
    pool = create_pool(clean_database.dsn, name="test-processor", max_size=2)
    yield pool
    pool.close()


@pytest.fixture
def mailbox_id(clean_database: TestDatabase) -> int:
    return insert_mailbox(clean_database.dsn)
