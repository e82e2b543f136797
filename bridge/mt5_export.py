#!/usr/bin/env python3
"""Export MetaTrader 5 positions and account information for mt5-reconciler.

Runs next to a MetaTrader 5 terminal (Windows, or Wine) with the official ``MetaTrader5``
Python package, and every ``--interval`` seconds writes, for one account:

    <out>/<account>/positions.json   {"export_round": ID, "positions": [positions_get() records]}
    <out>/<account>/account.json     account_info() as a record, plus "export_round": ID

Both files of one export carry the same round id (a string, new for every export), so
mt5-reconciler can tell a positions file of one round from an account file of the next
and read again instead of combining them. Each file is replaced atomically: written to a temp file in the same directory, flushed,
then renamed over the old one, so a reader sees the old file or the new one, never half of
one. When the terminal fails to answer (``positions_get()`` returns None), nothing is
written: the old files age, and mt5-reconciler reports the account as stale instead of
reading an error as "no positions". An empty tuple (no positions) is written as ``[]``.

The terminal password, when ``--login`` is given, is read from the environment variable
named by ``--password-env`` (default MT5_PASSWORD), never from the command line.

Usage:
    python mt5_export.py --out C:\\mt5-export --account acc-1 [--interval 5] [--once]
"""

import argparse
import json
import logging
import os
import sys
import itertools
import tempfile
import time

import MetaTrader5 as mt5

POSITIONS_FILE = "positions.json"
ACCOUNT_FILE = "account.json"
ROUND_FIELD = "export_round"

_rounds = itertools.count(1)

log = logging.getLogger("mt5_export")


def safe_account_dir(account):
    """Whether ``account`` can name a directory: letters, digits, - _ . only."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    return bool(account) and account not in (".", "..") and set(account) <= allowed


def write_atomic(path, data):
    """Writes ``data`` as JSON to ``path`` through a temp file and a rename."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # allow_nan=False: NaN or Infinity is an error here, not invalid JSON there.
            json.dump(data, f, allow_nan=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def new_round():
    """A round id no earlier export used: the time in nanoseconds and a counter, so two
    exports within one clock tick, or after a restart, still differ."""
    return "%d-%d" % (time.time_ns(), next(_rounds))


def export_once(out_dir):
    """Reads the terminal once and writes both files. Returns False (and writes nothing)
    when the terminal does not answer or its data cannot be written as JSON."""
    positions = mt5.positions_get()
    if positions is None:
        log.error("positions_get failed: %s", mt5.last_error())
        return False
    info = mt5.account_info()
    if info is None:
        log.error("account_info failed: %s", mt5.last_error())
        return False
    try:
        round_id = new_round()
        records = {ROUND_FIELD: round_id, "positions": [p._asdict() for p in positions]}
        account = dict(info._asdict(), **{ROUND_FIELD: round_id})
        # Serialise both before writing either, so a bad value leaves both files as they were.
        json.dumps(records, allow_nan=False)
        json.dumps(account, allow_nan=False)
    except (TypeError, ValueError) as e:
        log.error("terminal data cannot be written as JSON: %s", e)
        return False
    os.makedirs(out_dir, exist_ok=True)
    write_atomic(os.path.join(out_dir, POSITIONS_FILE), records)
    write_atomic(os.path.join(out_dir, ACCOUNT_FILE), account)
    log.info("exported positions=%d round=%s", len(records["positions"]), round_id)
    return True


def connect(args):
    """Initialises the MetaTrader5 package; returns False on failure."""
    kwargs = {}
    if args.terminal:
        kwargs["path"] = args.terminal
    if args.login:
        kwargs["login"] = args.login
        password = os.environ.get(args.password_env)
        if password:
            kwargs["password"] = password
        if args.server:
            kwargs["server"] = args.server
    if not mt5.initialize(**kwargs):
        log.error("initialize failed: %s", mt5.last_error())
        return False
    return True


def parse_args(argv):
    p = argparse.ArgumentParser(description="Export MT5 positions for mt5-reconciler.")
    p.add_argument("--out", required=True, help="export directory ([broker.mt5_export] dir)")
    p.add_argument("--account", required=True, help="our account id ([[accounts]] id)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between exports")
    p.add_argument("--once", action="store_true", help="export once and exit")
    p.add_argument("--terminal", help="path of terminal64.exe (default: the installed one)")
    p.add_argument("--login", type=int, help="account login (default: the terminal's)")
    p.add_argument("--server", help="trade server, with --login")
    p.add_argument("--password-env", default="MT5_PASSWORD",
                   help="environment variable holding the password, with --login")
    args = p.parse_args(argv)
    if not safe_account_dir(args.account):
        p.error("--account must be letters, digits, - _ . only")
    if args.interval <= 0:
        p.error("--interval must be greater than 0")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not connect(args):
        return 1
    out_dir = os.path.join(args.out, args.account)
    try:
        if args.once:
            return 0 if export_once(out_dir) else 1
        while True:
            started = time.monotonic()
            try:
                export_once(out_dir)
            except OSError as e:
                log.error("cannot write the export: %s", e)
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0
    finally:
        mt5.shutdown()


if __name__ == "__main__":
    sys.exit(main())
