"""`python -m standin.identity --port PORT --state-dir DIR [--host 127.0.0.1]`.

Prints `READY https://HOST:PORT` once the socket listens (`--port 0` picks a free port).
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import uvicorn

from standin.identity.app import create_app
from standin.identity.certs import ensure_ca, ensure_server_cert


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m standin.identity")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    args.state_dir.mkdir(parents=True, exist_ok=True)
    ca = ensure_ca(args.state_dir)
    server_cert = ensure_server_cert(args.state_dir, ca, "identity")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(256)
    port = sock.getsockname()[1]
    base_url = f"https://{args.host}:{port}"

    config = uvicorn.Config(
        create_app(base_url), ssl_certfile=str(server_cert.cert),
        ssl_keyfile=str(server_cert.key), log_level=args.log_level, access_log=False,
        backlog=256, timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # The socket already listens, so clients that connect now wait in the backlog.
    print(f"READY {base_url}", flush=True)
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
