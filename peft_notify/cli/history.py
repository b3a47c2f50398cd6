"""``peft-notify history [--job J] [--json] [--csv]``: print the notification history."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peft_notify.cli.args import count

if TYPE_CHECKING:  # imported by the handler: registering the sub-command stays cheap
    from peft_notify.desktop.history import SqliteHistoryStore
    from peft_notify.ports import HistoryEntry, HistoryQuery


def register(subparsers: Any) -> None:
    """Add the ``history`` sub-command."""
    p = subparsers.add_parser(
        "history",
        help="print the notification history",
        description="Print every notification the app decided, newest first, and what became of it.",
    )
    p.add_argument("--job", metavar="JOB", help="only this job: its name or its id (both are listed)")
    p.add_argument(
        "--kind",
        action="append",
        choices=["progress", "completion", "warning", "error"],
        help="only these kinds (repeatable)",
    )
    p.add_argument("--search", default="", help="only entries whose title/message contains this text")
    p.add_argument("--unread", action="store_true", help="only unread entries")
    p.add_argument("--limit", type=count, default=200, help="at most this many entries (default 200)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--db", type=Path, help="history database (default: the app's); only ever read")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: print the history; exit 2 when ``--db`` is not a history, 1 when it cannot be read.

    Opens the database read-only: nothing is created, moved or chmod-ed, whatever ``--db`` is.
    Every job-provided field is made terminal-safe (:mod:`peft_notify.termsafe`).
    """
    from peft_notify.desktop.history import (
        HistoryError,
        NotAHistoryDatabase,
        SqliteHistoryStore,
        default_history_path,
        export_csv,
        export_json,
    )
    from peft_notify.ports import HistoryQuery
    from peft_notify.termsafe import json_safe, printable

    path = args.db or default_history_path()
    if args.db is None and not path.exists():
        print("[]" if args.json else f"No history yet ({path} does not exist).")
        return 0
    try:
        store = SqliteHistoryStore(path, read_only=True)
    except NotAHistoryDatabase as exc:
        print(f"peft-notify history: {printable(exc)}", file=sys.stderr)
        return 2
    except HistoryError as exc:
        print(f"peft-notify history: cannot read the history at {printable(path)}: {printable(exc)}", file=sys.stderr)
        return 1
    query = HistoryQuery(kinds=tuple(args.kind or ()), text=args.search, unread_only=args.unread, limit=args.limit)
    try:
        entries = _query(store, query, args.job)
    except HistoryError as exc:
        print(f"peft-notify history: cannot read the history at {printable(path)}: {printable(exc)}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        print(json_safe(export_json(entries)))
    elif args.csv:
        print(printable(export_csv(entries), multiline=True), end="")
    elif not entries:
        print("No notifications match.")
    else:
        for e in entries:  # newest first, like --json, --csv and the help
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
            repeat = f" (x{e.repeat})" if e.repeat > 1 else ""
            mark = " " if e.read else "*"
            print(
                f"{mark} {stamp}  {printable(e.job_name or '-'):<20.20}  {printable(e.job_id):<14}  "
                f"{printable(e.kind):<10} {printable(e.urgency):<8} {e.status.value:<13}  {printable(e.title)}{repeat}"
            )
    return 0


def _query(store: SqliteHistoryStore, query: HistoryQuery, job: str | None) -> list[HistoryEntry]:
    """Entries matching ``query``, newest first; with ``job``, only the jobs it names.

    ``job`` is a job's name, its id, or the id part of an ``ID@HOST:PORT`` key: the
    text listing shows name and id, and either can be given back.
    """
    from dataclasses import replace

    if job is None:
        return store.query(query)
    ids = [job_id for job_id, name in store.jobs() if job in (job_id, name, job_id.split("@", 1)[0])]
    entries = [entry for job_id in ids for entry in store.query(replace(query, job_id=job_id))]
    entries.sort(key=lambda e: (e.ts, e.id), reverse=True)
    return entries[: query.limit]
