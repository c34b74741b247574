"""`newsletter serve`: the web pages, feeds, webhooks and operator API."""

from __future__ import annotations

import argparse

from newsletter.cli.context import Context
from newsletter.web.app import create_app


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="serve pages, feeds, webhooks and the operator API on [web] host and port")
    parser.add_argument("--host", help="override [web].host")
    parser.add_argument("--port", type=int, help="override [web].port")
    parser.set_defaults(handler=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    import uvicorn

    config = ctx.config
    app = create_app(config, ctx.engine)
    host = args.host or config.web.host
    port = args.port if args.port is not None else config.web.port
    # X-Forwarded-For and -Proto are believed only from the configured proxies: from anyone else
    # they would let a client pick the address that the per-client limits count.
    trusted = config.web.trusted_proxies
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=bool(trusted),
                forwarded_allow_ips=trusted or None)
    return 0
