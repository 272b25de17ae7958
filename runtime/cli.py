"""``sagecode``: enter the editor's container, see its status, check the machine, read logs.

    sagecode shell [CMD ...]   a shell (or CMD) in the editor's container
    sagecode status            image, tar, engine, container, URL, last activity
    sagecode doctor            OK / warning / problem per requirement, with the fix
    sagecode logs [-f]         the last hook's, the wrapper's and the editor's logs
    sagecode home              set up the persistent home and the host terminal hint
    sagecode jupyter ...       install the launcher card's glue (runtime.jupyter_setup)

Errors are one line saying what to do (exit status 2); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

from imagebuild.errors import SagecodeError, UsageError
from runtime import jupyter_setup
from runtime.checks import Level, render
from runtime.config import RuntimeConfig, load_config
from runtime.container import Containers
from runtime.doctor import run_checks
from runtime.hint import Phase, install_host_hint, mark_setup
from runtime.home import setup_home
from runtime.images import select_image
from runtime.logfiles import EDITOR_LOG, follow, log_files, tail
from runtime.shellplan import exec_argv, throwaway_argv
from runtime.status import format_lines, status_lines
from runtime.usermap import user_mapping
from runtime.wrapper import host_facts

DEFAULT_JUPYTER_ENV = Path("/home/ec2-user/anaconda3/envs/JupyterSystemEnv")
TAIL_LINES = 40


def cmd_shell(args: argparse.Namespace) -> int:
    """Exec into the running editor, or start a throwaway container like it."""
    config, containers = load_config(), Containers()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    info = containers.info()
    mapping = user_mapping(info, config.user, config.docker_host)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    running = containers.state(config.container_name)
    if running is not None and running.running:
        containers.replace_process(exec_argv(config, mapping, command, tty))
    setup_home(config.state.home)  # its bind mount must exist, as before the editor's first start
    image = select_image(config, containers, _stderr_log())
    name = f"{config.container_name}-shell-{os.getpid()}"
    facts = host_facts(config, info)
    containers.replace_process(throwaway_argv(config, mapping, image, facts, command, tty=tty, name=name))


def cmd_status(args: argparse.Namespace) -> int:
    """Print the status report."""
    print(format_lines(status_lines(load_config(), Containers())))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run every check; non-zero when any found a problem."""
    checks = run_checks(load_config(), Containers(), args.jupyter_env)
    print(render(checks), flush=True)
    return 1 if any(check.level is Level.PROBLEM for check in checks) else 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Show the tails of the logs; with ``-f``, follow the editor's."""
    state = load_config().state
    files = log_files(state)
    if not files and not args.follow:
        print(f"no logs yet in {state.logs}")
    for path in files:
        print(f"==> {path} <==", *tail(path, args.lines), sep="\n", flush=True)
    if args.follow:
        print(f"==> following {state.logs / EDITOR_LOG} (Ctrl-C to stop) <==", flush=True)
        follow(state.logs / EDITOR_LOG, lambda text: print(text, end="", flush=True))
    return 0


def cmd_home(args: argparse.Namespace) -> int:
    """Set up the persistent home and the host's hint; idempotent."""
    config = load_config()
    _refuse_root_for_user(config)
    if args.phase:  # first: the hint must not say "ready" from the last boot while this runs
        mark_setup(config.state, Phase(args.phase), args.log)
    setup_home(config.state.home)
    bashrc = config.host_home / ".bashrc"
    changed = False if args.no_hint else install_host_hint(bashrc, config.state)
    hint = "skipped" if args.no_hint else f"{bashrc} ({'updated' if changed else 'unchanged'})"
    print(f"home: {config.state.home}\nhost hint: {hint}")
    return 0


def _refuse_root_for_user(config: RuntimeConfig) -> None:
    """Lifecycle hooks run as root: files made by root in the user's home would lock them out."""
    root = config.state.root
    owner = next(p for p in (root, *root.parents) if p.exists()).stat().st_uid
    if os.geteuid() == 0 and owner != 0:
        name = _user_name(owner)
        raise UsageError(
            f"sagecode home must run as {name}, the owner of {root}, not as root",
            f"run: runuser -u {name} -- sagecode home",
        )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _stderr_log() -> logging.Logger:
    log = logging.getLogger("sagecode.cli")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("sagecode: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "shell": cmd_shell, "status": cmd_status, "doctor": cmd_doctor, "logs": cmd_logs, "home": cmd_home,
}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """The command line; ``jupyter`` is passed whole to its own parser, so it is not here."""
    top = argparse.ArgumentParser(
        prog="sagecode",
        description=__doc__.splitlines()[0],
        epilog="also: sagecode jupyter --help (the launcher card's setup), "
        "sagecode update [VERSION] (rebuild with another code-server), "
        "sagecode uninstall [--purge] [--dry-run]",
    )
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(dest="name", required=True, metavar="COMMAND")
    shell = sub.add_parser("shell", help="a shell or CMD in the editor's container")
    shell.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments (default: zsh -l)")
    sub.add_parser("status", help="image, tar, engine, container, URL, last activity")
    doctor = sub.add_parser("doctor", help="check the host, the engine, the volume and Jupyter")
    doctor.add_argument(
        "--jupyter-env",
        type=Path,
        default=DEFAULT_JUPYTER_ENV,
        help=f"the Jupyter server's environment (default {DEFAULT_JUPYTER_ENV})",
    )
    logs = sub.add_parser("logs", help="the last hook's, the wrapper's and the editor's logs")
    logs.add_argument("-f", "--follow", action="store_true", help="then follow the editor's log")
    logs.add_argument(
        "-n", "--lines", type=int, default=TAIL_LINES, help=f"lines per log (default {TAIL_LINES})"
    )
    home = sub.add_parser("home", help="set up the persistent home and the host hint (idempotent)")
    home.add_argument("--phase", choices=[p.value for p in Phase], help="record the setup's phase first")
    home.add_argument("--log", type=Path, help="the log the hint names for running/failed")
    home.add_argument("--no-hint", action="store_true", help="leave the host's ~/.bashrc alone")
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``sagecode`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1]
    if argv[int(debug) : int(debug) + 1] == ["jupyter"]:
        return jupyter_setup.main(argv[int(debug) + 1 :])
    if argv[int(debug) : int(debug) + 1] in (["update"], ["uninstall"]):
        from runtime import lifecycle  # noqa: PLC0415 - only these commands need it

        return lifecycle.main(argv[int(debug) :])
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.name](args)
    except SagecodeError as exc:
        if args.debug:
            raise
        print(f"sagecode: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
