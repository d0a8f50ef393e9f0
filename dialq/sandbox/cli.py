"""``dialq sandbox``: serve the local Symbl API in the foreground."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dialq.sandbox.config import ConfigError, SandboxConfig, parse_call_seconds, parse_retry_after
from dialq.sandbox.faults import FaultError, parse_rules
from dialq.sandbox.server import bind_socket, serve, url_of


def _fault_rates(pairs: list[str]) -> dict[str, float]:
    rates = {}
    for pair in pairs:
        kind, sep, rate = pair.partition("=")
        try:
            rates[kind] = float(rate)
        except ValueError:
            sep = ""
        if not sep or not kind:
            raise typer.BadParameter(f"expected KIND=RATE, got {pair!r}", param_hint="--fault-rate")
    return rates


def _fault_script(path: Path | None) -> list[dict[str, Any]]:
    """The rules in a JSON file: a list, or ``{"rules": [...]}`` as ``POST /_sandbox/faults``."""
    if path is None:
        return []

    def bad(reason: str) -> typer.BadParameter:
        return typer.BadParameter(f"{path}: {reason}", param_hint="--fault-script")

    try:
        script = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise bad(f"not JSON: {exc}") from None
    rules: Any = script.get("rules") if isinstance(script, dict) else script
    try:
        parse_rules(rules)
    except FaultError as exc:
        raise bad(str(exc)) from None
    return list(rules)


def sandbox_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    max_concurrent: Annotated[int, typer.Option(min=0, help="Live calls before 429.")] = 5,
    call_seconds: Annotated[
        str | None,
        typer.Option(help="Call length: S, or MIN-MAX drawn with --seed. Default: until stopped."),
    ] = None,
    app_id: Annotated[str, typer.Option(help="The appId token:generate accepts.")] = "sandbox-app",
    app_secret: Annotated[
        str,
        typer.Option(help="The appSecret token:generate accepts.", envvar="DIALQ_SANDBOX_SECRET"),
    ] = "sandbox-secret",  # noqa: S107  (a sandbox's well-known default, like its app id)
    token_ttl: Annotated[float, typer.Option(min=0, help="Token lifetime in seconds.")] = 86400.0,
    insights_delay: Annotated[
        float, typer.Option(min=0, help="Seconds after a call ends before insights appear.")
    ] = 0.0,
    retry_after: Annotated[
        str | None,
        typer.Option(help="Retry-After on capacity 429s: S, date or date:S. Default: none."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds call lengths and random faults.")] = 0,
    fault_rate: Annotated[
        list[str] | None,
        typer.Option(help="Random fault KIND=RATE (500, 429, drop, hang, ...); repeatable."),
    ] = None,
    fault_script: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="JSON file of scripted fault rules (the POST /_sandbox/faults format), "
            "armed at start and after every reset.",
        ),
    ] = None,
    any_country: Annotated[
        bool, typer.Option("--any-country", help="Accept any E.164 number, not only US/Canada.")
    ] = False,
    public_host: Annotated[
        str | None, typer.Option(help="host:port for eventUrl/resultWebSocketUrl.")
    ] = None,
    control_token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token the control API (/_sandbox/) requires. Default: none needed.",
            envvar="DIALQ_SANDBOX_CONTROL_TOKEN",
        ),
    ] = None,
) -> None:
    """Run the local Symbl API sandbox (control API under /_sandbox/)."""
    try:
        retry_s, retry_format = parse_retry_after(retry_after) if retry_after else (None, "seconds")
        config = SandboxConfig(
            app_id=app_id,
            app_secret=app_secret,
            token_ttl_s=token_ttl,
            max_concurrent=max_concurrent,
            call_seconds=parse_call_seconds(call_seconds),
            seed=seed,
            insights_delay_s=insights_delay,
            retry_after_s=retry_s,
            retry_after_format=retry_format,
            nanp_only=not any_country,
            public_host=public_host,
            fault_rates=_fault_rates(fault_rate or []),
            fault_rules=_fault_script(fault_script),
            control_token=control_token,
        )
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        sock = bind_socket(host, port)
    except OSError as exc:  # a busy port, or a host this machine does not have
        reason = exc.strerror or str(exc)
        typer.echo(f"error: cannot listen on {host}:{port}: {reason} (see --port)", err=True)
        raise typer.Exit(2) from None
    # Said only once the port is ours: the URL printed is one that answers.
    typer.echo(f"Symbl sandbox on {url_of(sock)} (control API at /_sandbox/)")
    serve(config, host, port, sock=sock)
