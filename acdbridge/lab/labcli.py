"""`acdbridge lab`: the real Asterisk 22 lab's commands (up, down, status, cli, traffic).
The lab's modules are imported when a command runs, so `acdbridge run` never loads them."""

from __future__ import annotations

import argparse
from pathlib import Path


def _say(line: str) -> None:
    print(line, flush=True)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {port}")
    return port


def _lab_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from acdbridge.lab.pbx import LabSettings

    return LabSettings(
        dir=args.dir, ami_port=args.ami_port, ami_tls_port=args.ami_tls_port, sip_port=args.sip_port
    )


def _cmd_lab_up(args: argparse.Namespace) -> int:
    from acdbridge.lab import pbx

    settings = _lab_settings(args)
    pbx.up(settings, _say)
    _say(pbx.describe(settings))
    return 0


def _cmd_lab_down(args: argparse.Namespace) -> int:
    from acdbridge.lab import pbx

    pbx.down(_lab_settings(args), _say)
    return 0


def _cmd_lab_status(args: argparse.Namespace) -> int:
    from acdbridge.lab import pbx

    running, text = pbx.status(_lab_settings(args))
    print(text)
    return 0 if running else 3


def _cmd_lab_cli(args: argparse.Namespace) -> int:
    from acdbridge.lab import pbx

    return pbx.cli(_lab_settings(args), args.command)


def _cmd_lab_traffic(args: argparse.Namespace) -> int:
    from acdbridge.lab import scenario, traffic

    scn = scenario.load(args.scenario)
    report = traffic.run_scenario(scn, _lab_settings(args), _say, record=args.record)
    _say(report.summary())
    return 0 if report.ok else 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from acdbridge.lab.pbx import DEFAULT_DIR

    lab = sub.add_parser("lab", help="a real Asterisk 22 for tests and demos (needs root)")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"lab directory (default {DEFAULT_DIR})"
    )
    common.add_argument("--ami-port", type=_port, default=25038, help="AMI port on 127.0.0.1 (default 25038)")
    common.add_argument(
        "--ami-tls-port", type=_port, default=25039, help="AMI over TLS port on 127.0.0.1 (default 25039)"
    )
    common.add_argument(
        "--sip-port", type=_port, default=25060, help="SIP UDP port on 127.0.0.1 (default 25060)"
    )

    p = lab_sub.add_parser("up", parents=[common], help="build (first time) and start the lab; idempotent")
    p.set_defaults(func=_cmd_lab_up)
    p = lab_sub.add_parser("down", parents=[common], help="stop Asterisk and unmount what the lab mounted")
    p.set_defaults(func=_cmd_lab_down)
    p = lab_sub.add_parser("status", parents=[common], help="is the lab running (exit 0) or not (exit 3)")
    p.set_defaults(func=_cmd_lab_status)
    p = lab_sub.add_parser("cli", parents=[common], help="run an Asterisk CLI command, e.g. 'queue show'")
    p.add_argument("command", help="the Asterisk CLI command, quoted")
    p.set_defaults(func=_cmd_lab_cli)
    p = lab_sub.add_parser(
        "traffic", parents=[common], help="drive a traffic scenario through the lab over AMI"
    )
    p.add_argument(
        "--scenario", required=True, help="scenario file (TOML or JSON) or a shipped scenario's name"
    )
    p.add_argument(
        "--record",
        type=Path,
        metavar="TRACE",
        help="save the raw AMI stream to TRACE and the run's queue_log lines to TRACE.queue_log",
    )
    p.set_defaults(func=_cmd_lab_traffic)
