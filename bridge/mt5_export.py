#!/usr/bin/env python3
"""Export MetaTrader 5 positions, pending orders, recent deals, account information and
quotes for mt5-reconciler.

Runs next to a MetaTrader 5 terminal (Windows, or Wine) with the official ``MetaTrader5``
Python package, and every ``--interval`` seconds writes, for one account:

    <out>/<account>/positions.json   {"export_round": ID, "positions": [positions_get() records]}
    <out>/<account>/account.json     account_info() as a record (its "margin_mode": 0 retail
                                     netting, 1 exchange, 2 retail hedging), plus
                                     "export_round": ID, and terminal_info()'s "connected"
                                     and "trade_allowed" as "terminal_connected" and
                                     "terminal_trade_allowed"
    <out>/<account>/orders.json      {"export_round": ID, "orders": [orders_get() records]}
    <out>/<account>/deals.json       {"export_round": ID, "date_from": T0, "date_to": T1,
                                     "deals": [history_deals_get(date_from, date_to) records]}:
                                     the deals of the last --deals-hours (default 24)
    <out>/<account>/quotes.json      {"positions_sha256": ..., "quotes": [...]}: for each
                                     symbol held, symbol_info_tick(symbol) as a record
                                     with its "symbol"

The files of one export carry the same round id (a string, new for every export), so
mt5-reconciler can tell a positions file of one round from an account, orders or deals file
of the next and read again instead of combining them. Each file is replaced atomically:
written to a temp file in the same directory, flushed, then renamed over the old one, so a
reader sees the old file or the new one, never half of one. When the terminal fails to
answer (``positions_get()``, ``orders_get()`` or ``history_deals_get()`` returns None),
nothing is written: the old files age, and mt5-reconciler reports the account as stale
instead of reading an error as "no positions". An empty tuple is written as ``[]``.

The deal window asks from ``--deals-hours`` before now (UTC) to a day after now: the
terminal compares these times with the trade server's clock, which is often ahead of UTC,
and a window that ended at now would miss the latest deals. ``date_from`` and ``date_to``
(unix seconds) say what was asked.

A terminal that has lost its trade server still answers ``positions_get()``, with what
it last knew or with nothing: ``terminal_connected`` (``terminal_info().connected``) tells
mt5-reconciler so, and it then reads the round as unknown, never as a flat account. A
terminal whose ``terminal_info()`` returns None is treated like one that does not answer:
nothing is written.

Quotes are read in the same round as the positions, and ``positions_sha256`` is the
SHA-256 (hex) of the exact bytes of that round's positions.json: a reader that finds
another value has files of two rounds, and uses no quotes of that read. A symbol whose
tick the terminal does not give (``symbol_info_tick()`` returns None, or a value that
cannot be written as JSON) is logged and left out; it never stops the export.

Tick times (``time``, in seconds, and ``time_msc``, in milliseconds since 1970) are the
trade server's clock, as MetaTrader 5 gives them, written unchanged. mt5-reconciler reads
them as UTC. Many trade servers run on another clock (often UTC+2 or UTC+3): their quotes
then look hours old, or from the future, and the reconciler refuses to measure their age
(the quote-age check holds instead of passing). The quote-age check is only meaningful for
a trade server whose clock is UTC.

The terminal password, when ``--login`` is given, is read from the environment variable
named by ``--password-env`` (default MT5_PASSWORD), never from the command line.

Usage:
    python mt5_export.py --out C:\\mt5-export --account acc-1 [--interval 5] [--deals-hours 24] [--once]
"""

import argparse
import datetime
import hashlib
import itertools
import json
import logging
import os
import sys
import tempfile
import time

import MetaTrader5 as mt5

POSITIONS_FILE = "positions.json"
ACCOUNT_FILE = "account.json"
QUOTES_FILE = "quotes.json"
ORDERS_FILE = "orders.json"
DEALS_FILE = "deals.json"
ROUND_FIELD = "export_round"

# Hours of deal history exported by default.
DEFAULT_DEALS_HOURS = 24.0

_rounds = itertools.count(1)

log = logging.getLogger("mt5_export")


def safe_account_dir(account):
    """Whether ``account`` can name a directory: letters, digits, - _ . only."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    return bool(account) and account not in (".", "..") and set(account) <= allowed


def to_json(data):
    """``data`` as compact JSON text; NaN or Infinity is an error here (ValueError), not
    invalid JSON for the reader."""
    return json.dumps(data, allow_nan=False, separators=(",", ":"))


def write_atomic(path, data):
    """Writes ``data`` as JSON to ``path`` through a temp file and a rename."""
    write_text_atomic(path, to_json(data))


def write_text_atomic(path, text):
    """Writes ``text`` (UTF-8) to ``path`` through a temp file and a rename."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_ticks(symbols):
    """``symbol_info_tick()`` of each symbol as a record with its ``symbol``; a symbol
    without a usable tick is logged and left out."""
    ticks = []
    for symbol in symbols:
        tick = mt5.symbol_info_tick(symbol)
        if tick is None:
            log.warning("symbol_info_tick(%s) failed: %s", symbol, mt5.last_error())
            continue
        record = dict(tick._asdict(), symbol=symbol)
        try:
            to_json(record)
        except (TypeError, ValueError) as e:
            log.warning("tick of %s cannot be written as JSON: %s", symbol, e)
            continue
        ticks.append(record)
    return ticks


def new_round():
    """A round id no earlier export used: the time in nanoseconds and a counter, so two
    exports within one clock tick, or after a restart, still differ."""
    return "%d-%d" % (time.time_ns(), next(_rounds))


def deal_window(hours, now=None):
    """The (date_from, date_to) of the deals to export: ``hours`` before ``now`` (UTC) to a
    day after it, as timezone-aware datetimes."""
    now = datetime.datetime.now(datetime.timezone.utc) if now is None else now
    return now - datetime.timedelta(hours=hours), now + datetime.timedelta(days=1)


def export_once(out_dir, deals_hours=DEFAULT_DEALS_HOURS):
    """Reads the terminal once and writes the five files. Returns False (and writes
    nothing) when the terminal does not answer or its positions, orders, deals or account
    information cannot be written as JSON; a missing tick only leaves its symbol out of
    quotes.json."""
    positions = mt5.positions_get()
    if positions is None:
        log.error("positions_get failed: %s", mt5.last_error())
        return False
    orders = mt5.orders_get()
    if orders is None:
        log.error("orders_get failed: %s", mt5.last_error())
        return False
    date_from, date_to = deal_window(deals_hours)
    deals = mt5.history_deals_get(date_from, date_to)
    if deals is None:
        log.error("history_deals_get failed: %s", mt5.last_error())
        return False
    info = mt5.account_info()
    if info is None:
        log.error("account_info failed: %s", mt5.last_error())
        return False
    terminal = mt5.terminal_info()
    if terminal is None:
        log.error("terminal_info failed: %s", mt5.last_error())
        return False
    try:
        round_id = new_round()
        records = {ROUND_FIELD: round_id, "positions": [p._asdict() for p in positions]}
        account = dict(
            info._asdict(),
            terminal_connected=bool(terminal.connected),
            terminal_trade_allowed=bool(terminal.trade_allowed),
            **{ROUND_FIELD: round_id},
        )
        orders_record = {ROUND_FIELD: round_id, "orders": [o._asdict() for o in orders]}
        deals_record = {
            ROUND_FIELD: round_id,
            "date_from": int(date_from.timestamp()),
            "date_to": int(date_to.timestamp()),
            "deals": [d._asdict() for d in deals],
        }
        # Serialise all before writing any, so a bad value leaves the files as they were.
        positions_text = to_json(records)
        account_text = to_json(account)
        orders_text = to_json(orders_record)
        deals_text = to_json(deals_record)
    except (TypeError, ValueError) as e:
        log.error("terminal data cannot be written as JSON: %s", e)
        return False
    symbols = sorted({r["symbol"] for r in records["positions"]})
    quotes = {
        "positions_sha256": hashlib.sha256(positions_text.encode("utf-8")).hexdigest(),
        "quotes": read_ticks(symbols),
    }
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomic(os.path.join(out_dir, POSITIONS_FILE), positions_text)
    write_text_atomic(os.path.join(out_dir, ACCOUNT_FILE), account_text)
    write_text_atomic(os.path.join(out_dir, ORDERS_FILE), orders_text)
    write_text_atomic(os.path.join(out_dir, DEALS_FILE), deals_text)
    write_atomic(os.path.join(out_dir, QUOTES_FILE), quotes)
    log.info(
        "exported positions=%d orders=%d deals=%d quotes=%d round=%s",
        len(records["positions"]),
        len(orders_record["orders"]),
        len(deals_record["deals"]),
        len(quotes["quotes"]),
        round_id,
    )
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
    p = argparse.ArgumentParser(
        description="Export MT5 positions, orders, deals and quotes for mt5-reconciler.")
    p.add_argument("--out", required=True, help="export directory ([broker.mt5_export] dir)")
    p.add_argument("--account", required=True, help="our account id ([[accounts]] id)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between exports")
    p.add_argument("--once", action="store_true", help="export once and exit")
    p.add_argument("--deals-hours", type=float, default=DEFAULT_DEALS_HOURS,
                   help="hours of deal history to export (default 24)")
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
    if args.deals_hours <= 0:
        p.error("--deals-hours must be greater than 0")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not connect(args):
        return 1
    out_dir = os.path.join(args.out, args.account)
    try:
        if args.once:
            return 0 if export_once(out_dir, args.deals_hours) else 1
        while True:
            started = time.monotonic()
            try:
                export_once(out_dir, args.deals_hours)
            except OSError as e:
                log.error("cannot write the export: %s", e)
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0
    finally:
        mt5.shutdown()


if __name__ == "__main__":
    sys.exit(main())
