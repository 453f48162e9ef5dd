"""`python -m standin.exchange --listen-port N --upstream-host H --upstream-port P …`

Prints `READY port=N` (and `control=M` with --control-port) once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from standin.exchange.server import ExchangeProxy, server_context


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m standin.exchange", description=__doc__)
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--tls", action="store_true", help="implicit TLS, like port 993")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--introspection-url", help="the emulator's /introspect")
    parser.add_argument("--ca", help="ca.pem trusted for the introspection call")
    parser.add_argument("--token-check-interval", type=float, default=0.5)
    parser.add_argument("--connection-limit", type=int, default=10)
    parser.add_argument("--control-port", type=int, help="JSON control endpoint (0: any)")
    parser.add_argument("--throttle", action="append", default=[], metavar="MATCH:MS",
                        help="throttle every command of an address or domain")
    parser.add_argument("--not-connected", action="append", default=[], metavar="MATCH")
    parser.add_argument("--random-bye", type=float, default=0.0, metavar="P")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _proxy(args: argparse.Namespace) -> ExchangeProxy:
    context = None
    if args.tls:
        if not (args.cert and args.key):
            raise SystemExit("--tls needs --cert and --key")
        context = server_context(args.cert, args.key)
    proxy = ExchangeProxy(args.upstream_host, args.upstream_port, host=args.listen_host,
                          port=args.listen_port, ssl_context=context,
                          introspection_url=args.introspection_url, ca_path=args.ca,
                          token_check_interval=args.token_check_interval,
                          connection_limit=args.connection_limit,
                          control_port=args.control_port)
    for item in args.throttle:
        match, _, backoff = item.rpartition(":")
        proxy.faults.throttle(match, int(backoff), count=None)
    for match in args.not_connected:
        proxy.faults.not_connected(match, count=None)
    if args.random_bye:
        proxy.faults.random_byes(args.random_bye, args.seed)
    return proxy


async def _main(args: argparse.Namespace) -> None:
    proxy = _proxy(args)
    ready = asyncio.Event()
    serving = asyncio.create_task(proxy.serve_forever(ready))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, serving.cancel)
    await ready.wait()
    control = f" control={proxy.control_port}" if proxy.control_port is not None else ""
    print(f"READY port={proxy.port}{control}", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def main() -> None:
    asyncio.run(_main(_parser().parse_args()))


if __name__ == "__main__":
    main()
