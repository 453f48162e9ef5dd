"""Which database errors are one mail's own failure and which are an outage (common/db.py)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from common.db import is_outage, refuses_input


@pytest.mark.parametrize(
    "error",
    [
        errors.ProgramLimitExceeded("index row size 6152 exceeds btree version 4 maximum"),
        errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
        errors.CharacterNotInRepertoire("invalid byte sequence for encoding UTF8"),
        errors.CheckViolation("new row violates check constraint"),
        errors.StringDataRightTruncation("value too long"),
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
    ],
)
def test_what_the_database_refuses_in_the_data_is_that_mails_failure(error: Exception) -> None:
    """Classes 22, 23 and 54 (and psycopg's own NUL refusal) come back on every retry."""
    assert refuses_input(error)
    assert not is_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.SerializationFailure("could not serialize access"),
        errors.DeadlockDetected("deadlock detected"),
        errors.InsufficientResources("out of shared memory"),
        errors.ConnectionFailure("connection failure"),
        errors.LockNotAvailable("could not obtain lock"),
        psycopg.OperationalError("connection refused"),
        psycopg.InterfaceError("the connection is closed"),
    ],
)
def test_an_unwell_database_is_an_outage_retried_as_one(error: Exception) -> None:
    """Classes 08, 40, 53, 55, 57, 58 and errors without a SQLSTATE (a lost connection)."""
    assert is_outage(error)
    assert not refuses_input(error)


def test_a_trigger_refusal_is_neither_and_other_errors_are_not_database_errors() -> None:
    """A CRM trigger's RAISE (P0001) is left to the caller; a non-database error is neither."""
    raised = errors.RaiseException("the CRM is refusing documents")
    assert not is_outage(raised)
    assert not refuses_input(raised)
    assert not is_outage(ValueError("x"))
    assert not refuses_input(ValueError("x"))
