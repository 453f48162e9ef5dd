"""The container image, built here (`make image`), runs every role of the end-to-end
skeleton as the Kubernetes manifests run it: `migrate` on an empty database, then auth,
fetcher, processor and relay turn seeded mails into CRM documents and ERP events.

In `make chaos` (minutes; needs root, buildah, podman, runc and debootstrap), not
`make test`: the first build bootstraps a Debian base.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from standin.testing import StandIn
from tests.conftest import new_address
from tests.support.container import IMAGE, ImageLauncher, build_image, podman_run
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox
from tests.support.infra import PG_ADMIN_DSN, TestDatabase, TestVhost
from tests.support.mail import append_invoices
from tests.support.services import Services, new_token_keys, service_env

pytestmark = [pytest.mark.chaos, pytest.mark.image, pytest.mark.e2e, pytest.mark.timeout(900)]

N_MAILS = 3
NO_CAPABILITIES = "0000000000000000"


@pytest.fixture(scope="module")
def image() -> str:
    seconds = build_image()
    print(f"\nimage {IMAGE} built in {seconds:.1f} s")
    return IMAGE


@pytest.fixture
def empty_database() -> Iterator[TestDatabase]:
    """A database with no schema yet: the image's `migrate` role creates it."""
    db = TestDatabase()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db.name}"')
    yield db
    db.drop()


def test_every_role_runs_from_the_image(
    image: str,
    empty_database: TestDatabase,
    vhost: TestVhost,
    standin: StandIn,
    auth_port: int,
    tenant: dict,
    erp_consumer: EventConsumer,
    tmp_path: Path,
) -> None:
    """migrate exits 0 and leaves the schema; the four services start from the image as
    uid 10001 with no capabilities, no privilege escalation and a read-only root, become
    ready, carry seeded mails to documents and events, and stop cleanly on SIGTERM."""
    started = time.monotonic()
    vhost.purge_work_queues()
    env = service_env(
        database_url=empty_database.dsn,
        broker_url=vhost.url,
        standin=standin,
        http_port=auth_port,
        token_keys=new_token_keys(),
    )
    launcher = ImageLauncher(standin.identity.ca_path, tmp_path, f"bandeja-e2e-{os.getpid()}")
    try:
        migrate = subprocess.run(
            launcher("migrate", "migrate", env),
            env={**os.environ, **env}, capture_output=True, text=True, timeout=180, check=False,
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        with psycopg.connect(empty_database.dsn) as conn:
            (tables,) = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'documents'"
            ).fetchone()
        assert tables == 1

        services = Services(env, tmp_path, launcher=launcher, ready_timeout=90).start()
        try:
            for name, process in services.running.items():
                container = f"{launcher.prefix}-{process.name}"
                status = launcher.process_status(container)
                assert status["Uid"].split()[:2] == ["10001", "10001"], name
                assert status["CapEff"] == NO_CAPABILITIES, name
                assert status["CapPrm"] == NO_CAPABILITIES, name
                assert status["NoNewPrivs"] == "1", name
                mounts = launcher.mounts(container)
                assert "ro" in mounts["/"][1], name
                assert mounts["/tmp"][0] == "tmpfs", name
                assert "rw" in mounts["/tmp"][1], name
            _mails_become_documents(services, standin, tenant, erp_consumer)
        finally:
            codes = services.stop()
        assert codes == dict.fromkeys(("auth", "fetcher", "processor", "relay"), 0), codes
    finally:
        launcher.remove_all()
    print(f"\nroles from the image: migrate, start, {N_MAILS} mails, stop in "
          f"{time.monotonic() - started:.1f} s")


def test_root_filesystem_is_read_only_and_standin_absent(image: str, tmp_path: Path) -> None:
    """In the container as the manifests run it, the root filesystem is mounted read-only
    and /tmp is a writable tmpfs; the stand-in (development only) is not importable: it is
    not part of the production package."""
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    ca.chmod(0o644)
    probe = (
        "import pathlib\n"
        "mounts = {f[1]: f[3].split(',') for f in map(str.split, open('/proc/self/mounts'))}\n"
        "print('/', 'ro' if 'ro' in mounts['/'] else 'rw')\n"
        "pathlib.Path('/tmp/probe').write_text('x')\n"
        "print('/tmp writable')\n"
        "try:\n"
        "    import standin\n"
        "    print('standin importable')\n"
        "except ImportError:\n"
        "    print('standin absent')\n"
    )
    command = podman_run(f"bandeja-e2e-{os.getpid()}-probe", {}, ca, image)
    command[command.index(image):command.index(image)] = ["--entrypoint", "python"]
    result = subprocess.run(
        [*command, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["/ ro", "/tmp writable", "standin absent"]


def _mails_become_documents(
    services: Services, standin: StandIn, tenant: dict, erp_consumer: EventConsumer
) -> None:
    address = new_address(tenant, "facturas")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    expected = append_invoices(standin, address, N_MAILS)

    page = connect_mailbox(services.auth_url, standin, address)
    assert page.status_code == 200, page.text
    assert "Buzón conectado" in page.text
    processed = erp_consumer.wait_for("bandeja.document.processed", N_MAILS, timeout=90)
    by_subject = {e["data"]["subject"]: e for e in processed}
    assert set(by_subject) == set(expected)
    for subject, hashes in expected.items():
        attachments = by_subject[subject]["data"]["attachments"]
        assert {a["filename"]: a["sha256"] for a in attachments} == hashes
    assert standin.dovecot.unseen_uids(address) == []
