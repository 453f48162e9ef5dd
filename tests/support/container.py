"""Bandeja's processes started from the container image, the way the Kubernetes manifests
run them: uid 10001, read-only root filesystem with a writable /tmp (the manifests'
emptyDir, here a tmpfs), every capability dropped, no privilege escalation.

The containers share the host's network so they reach the stand-in, PostgreSQL and
RabbitMQ on 127.0.0.1 as the process-level tests do. Settings pass as environment
variable *names* (`--env NAME`: podman copies the value from its own environment), so no
secret appears on a command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("BANDEJA_TEST_IMAGE", "localhost/bandeja:e2e")
CA_IN_CONTAINER = "/etc/bandeja/ca.pem"
# runc refuses the runtime's default limits on this kind of machine ("error setting
# rlimits"); explicit ones within the machine's own are accepted.
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=1024:1024"]


def require_image_tools() -> None:
    """Fail (never skip) with how to get what building and running the image needs."""
    missing = [t for t in ("buildah", "podman", "runc", "debootstrap") if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing {missing}: apt-get install buildah podman runc debootstrap")
    if os.geteuid() != 0:
        pytest.fail("building the image (debootstrap, container storage) needs root")


def build_image(image: str = IMAGE) -> float:
    """`make image` into the tag `image`; returns the seconds it took."""
    require_image_tools()
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh")],
        env={**os.environ, "IMAGE": image},
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, f"build-image failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return time.monotonic() - started


def podman_run(name: str, env: dict[str, str], ca_file: Path, image: str = IMAGE) -> list[str]:
    """`podman run` of one Bandeja process as the manifests run it (see the module doc)."""
    names = sorted(k for k in env if k.startswith("BANDEJA_") and k != "BANDEJA_CA_BUNDLE")
    return [
        "podman", "--runtime", "runc", "run", "--rm", "--name", name,
        "--network", "host",
        "--user", "10001:10001",
        "--read-only", "--read-only-tmpfs=false",
        "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m,mode=1777",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        *ULIMITS,
        "--volume", f"{ca_file}:{CA_IN_CONTAINER}:ro",
        "--env", f"BANDEJA_CA_BUNDLE={CA_IN_CONTAINER}",
        *[arg for n in names for arg in ("--env", n)],
        image,
    ]


class ImageLauncher:
    """A `tests.support.services.Launcher` that runs each process in its own container."""

    def __init__(self, ca_bundle: str, work: Path, prefix: str, image: str = IMAGE) -> None:
        self.image = image
        self.prefix = prefix
        # Readable by uid 10001 wherever the stand-in keeps its state.
        self.ca_file = work / "ca.pem"
        shutil.copyfile(ca_bundle, self.ca_file)
        self.ca_file.chmod(0o644)
        self.names: list[str] = []

    def __call__(self, command: str, name: str, env: dict[str, str]) -> list[str]:
        container = f"{self.prefix}-{name}"
        self.names.append(container)
        return [*podman_run(container, env, self.ca_file, self.image), command]

    def inspect(self, container: str, template: str) -> str:
        result = subprocess.run(
            ["podman", "inspect", "--format", template, container],
            capture_output=True, text=True, timeout=30, check=True,
        )
        return result.stdout.strip()

    def process_status(self, container: str) -> dict[str, str]:
        """/proc/PID/status of the container's main process, as the kernel sees it."""
        pid = self.inspect(container, "{{.State.Pid}}")
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}

    def mounts(self, container: str) -> dict[str, tuple[str, set[str]]]:
        """{mount point: (filesystem type, options)} in the container's mount namespace."""
        pid = self.inspect(container, "{{.State.Pid}}")
        return {
            fields[1]: (fields[2], set(fields[3].split(",")))
            for fields in (line.split() for line in Path(f"/proc/{pid}/mounts").open())
        }

    def remove_all(self) -> None:
        """Containers a failed test left behind (their podman client may be gone)."""
        if self.names:
            subprocess.run(["podman", "rm", "--force", "--ignore", *self.names],
                           capture_output=True, timeout=60, check=False)
