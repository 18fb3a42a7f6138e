"""`convoy context list|current|use|set|delete`: named connection settings in the config file
(cli/config.py), so `convoy deployments list` needs no flags and no exported variables."""

from __future__ import annotations

import argparse
import os
from typing import Any

from cli import config
from cli.common import CliError, command, emit, print_table


def _row(name: str, ctx: config.Context, current: str) -> dict[str, Any]:
    return {"name": name, "current": name == current, **ctx.public()}


def _list(args: argparse.Namespace) -> int:
    cfg = config.load()
    rows = [_row(name, ctx, cfg.current) for name, ctx in sorted(cfg.contexts.items())]
    emit(args, rows, lambda: print_table(
        ("current", "name", "server", "client", "token file"),
        [("*" if r["current"] else "", r["name"], r.get("server", ""), r.get("client", ""), r.get("token_file", ""))
         for r in rows]))
    return 0


def _current(args: argparse.Namespace) -> int:
    name, ctx = config.selected()
    if not name:
        raise CliError(f"no current context (convoy context use NAME; the config file is {config.config_path()})", 4)
    out = {"name": name, **ctx.public()}
    emit(args, out, lambda: print(name))
    return 0


def _use(args: argparse.Namespace) -> int:
    cfg = config.load()
    config.context_named(cfg, args.name)
    config.save(config.Config(contexts=cfg.contexts, current=args.name))
    emit(args, {"name": args.name}, lambda: print(f"now using context {args.name!r}"))
    return 0


def _absolute(path: str | None) -> str | None:
    """A path as given relative to where the command runs, stored absolute ('' clears it)."""
    return os.path.abspath(os.path.expanduser(path)) if path else path


def _set(args: argparse.Namespace) -> int:
    config.check_name(args.name)
    cfg = config.load()
    if args.server is not None and "://" in args.server:
        raise CliError(f"--server is {args.server!r}, a URL: a context's server is the gRPC HOST:PORT "
                       "(a URL goes in --rest)", 2)
    if args.ca_fingerprint:
        from common import pins

        try:
            args.ca_fingerprint = pins.parse_fingerprint(args.ca_fingerprint)
        except ValueError as exc:
            raise CliError(f"--ca-fingerprint: {exc}", 2) from None
    ctx = config.with_fields(cfg.contexts.get(args.name, config.Context()), server=args.server, rest=args.rest,
                             ca=_absolute(args.ca), ca_fingerprint=args.ca_fingerprint, insecure=args.insecure,
                             token_file=_absolute(args.token_file), client=args.client)
    if ctx.insecure and (ctx.ca or ctx.ca_fingerprint):
        raise CliError("a context is either --insecure or trusts a CA (--ca, --ca-fingerprint), not both "
                       "(--no-insecure switches it to TLS)", 2)
    if ctx.token_file:
        config.read_token_file(ctx.token_file)  # refuse a loose or unreadable token file now, not later
    contexts = {**cfg.contexts, args.name: ctx}
    current = cfg.current or args.name  # the first context becomes the current one
    path = config.save(config.Config(contexts=contexts, current=current))
    out = {"name": args.name, "current": current == args.name, **ctx.public()}
    emit(args, out, lambda: print(f"context {args.name!r} saved in {path}"
                                  + (" (current)" if current == args.name else f"; convoy context use {args.name}")))
    return 0


def _delete(args: argparse.Namespace) -> int:
    cfg = config.load()
    config.context_named(cfg, args.name)
    contexts = {k: v for k, v in cfg.contexts.items() if k != args.name}
    config.save(config.Config(contexts=contexts, current="" if cfg.current == args.name else cfg.current))
    emit(args, {"name": args.name}, lambda: print(f"deleted context {args.name!r}"))
    return 0


def save_bootstrap_context(name: str, token: str, client_id: str, ca_file: str, server: str) -> dict[str, str]:
    """`admin bootstrap --save-context NAME`: the new token in a 0600 file beside the config file
    and a context that uses it, made current."""
    config.check_name(name)
    cfg = config.load()
    path = config.config_path()
    token_file = path.parent / f"{name}.token"
    config.write_token_file(token_file, token)
    ctx = config.with_fields(cfg.contexts.get(name, config.Context()), server=server, ca=os.path.abspath(ca_file),
                             token_file=str(token_file), client=client_id)
    config.save(config.Config(contexts={**cfg.contexts, name: ctx}, current=name))
    return {"context": name, "config_file": str(path), "token_file": str(token_file)}


def register(sub: Any) -> None:
    ctx = sub.add_parser("context", help="named connection settings (server, CA, token file, client)") \
        .add_subparsers(dest="sub", required=True, metavar="COMMAND")
    command(ctx, "list", "list the contexts in the config file; * marks the current one",
            "  convoy context list\n  convoy context list -o json", _list, connection=False, quiet="name")
    command(ctx, "current", "print the current context's name (-o json: its settings)",
            "  convoy context current\n  convoy context current -o json", _current, connection=False, quiet="name")
    p = command(ctx, "use", "make a context the current one",
                "  convoy context use prod", _use, connection=False, quiet="name")
    p.add_argument("name", metavar="NAME")
    p = command(ctx, "set", "create a context or change some of its settings (the first one becomes current)",
                "  convoy context set prod --server convoy.example.com:7443 --ca ~/prod-ca.pem \\\n"
                "      --token-file ~/.config/convoy/prod.token --client 6f1c...\n"
                "  convoy context set prod --client ''        # clear one setting\n"
                "  convoy context set lab --server 127.0.0.1:7443 --insecure", _set, connection=False, quiet="name")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--server", metavar="HOST:PORT", help="the coordinator's gRPC address")
    p.add_argument("--rest", metavar="URL", help="the coordinator's HTTP URL (dashboard, REST), for reference")
    p.add_argument("--ca", metavar="FILE", help="the coordinator's CA file (stored as an absolute path)")
    p.add_argument("--ca-fingerprint", metavar="SHA256", help="the CA's sha256:… fingerprint")
    p.add_argument("--insecure", action=argparse.BooleanOptionalAction, default=None,
                   help="plaintext, for a coordinator started with --insecure")
    p.add_argument("--token-file", metavar="FILE", help="a file holding the API token (must be mode 0600)")
    p.add_argument("--client", metavar="ID", help="the default --client of every command")
    p = command(ctx, "delete", "remove a context", "  convoy context delete lab", _delete, connection=False,
                quiet="name")
    p.add_argument("name", metavar="NAME")

