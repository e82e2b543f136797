"""A stand-in for the MetaTrader5 package, for testing mt5_export.py without a terminal.

Answers like the real package: positions_get() returns a tuple of TradePosition named
tuples (or None on error), orders_get() of TradeOrder, history_deals_get(date_from,
date_to) of TradeDeal (the fake does not filter by time), account_info() an AccountInfo
named tuple (or None), symbol_info_tick(symbol) a Tick named tuple (or None for a symbol it
has no tick of). What it returns is set by the module globals below, or, for a script run
as a process, by environment variables:

    FAKE_MT5_POSITIONS  "error" (None), "empty" (()), or a JSON file of position records
                        (default: examples/data/mt5-positions.json of this repository)
    FAKE_MT5_ORDERS     the same for orders_get() (default: examples/data/mt5-orders.json)
    FAKE_MT5_DEALS      the same for history_deals_get() (default:
                        examples/data/mt5-deals.json)
    FAKE_MT5_ACCOUNT    "error" (None), or a JSON file of one account record
    FAKE_MT5_TICKS      "error" (None for every symbol), or a JSON file of
                        {symbol: tick record} (default: DEFAULT_TICKS)
    FAKE_MT5_TERMINAL   "error" (None), or a JSON file of one terminal_info() record
                        (default: DEFAULT_TERMINAL, connected and trading allowed)

Tick times, like the real terminal's, are the trade server's clock (seconds, and
milliseconds in time_msc); the defaults are fixed times of a server that runs on UTC.
"""

import collections
import json
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_EXAMPLES = os.path.join(_HERE, "..", "..", "..", "examples", "data")
_DEFAULT_POSITIONS = os.path.join(_EXAMPLES, "mt5-positions.json")
_DEFAULT_ORDERS = os.path.join(_EXAMPLES, "mt5-orders.json")
_DEFAULT_DEALS = os.path.join(_EXAMPLES, "mt5-deals.json")

# Field order of the real package's TradePosition and AccountInfo.
TradePosition = collections.namedtuple(
    "TradePosition",
    "ticket time time_msc time_update time_update_msc type magic identifier reason volume "
    "price_open sl tp price_current swap profit symbol comment external_id",
)
TradeOrder = collections.namedtuple(
    "TradeOrder",
    "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type type_time "
    "type_filling state magic position_id position_by_id reason volume_initial volume_current "
    "price_open sl tp price_current price_stoplimit symbol comment external_id",
)
TradeDeal = collections.namedtuple(
    "TradeDeal",
    "ticket order time time_msc type entry magic position_id reason volume price commission "
    "swap profit fee symbol comment external_id",
)
AccountInfo = collections.namedtuple(
    "AccountInfo",
    "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert "
    "margin_mode currency_digits fifo_close balance credit profit equity margin margin_free "
    "margin_level margin_so_call margin_so_so margin_initial margin_maintenance assets "
    "liabilities commission_blocked name server currency company",
)

# The fields of the real package's TerminalInfo that the bridge reads, and a few more.
TerminalInfo = collections.namedtuple(
    "TerminalInfo",
    "community_account community_connection connected dlls_allowed trade_allowed "
    "tradeapi_disabled email_enabled ftp_enabled notifications_enabled mqid build "
    "maxbars codepage ping_last community_balance retransmission company name language "
    "path data_path commondata_path",
)

Tick = collections.namedtuple(
    "Tick", "time bid ask last volume time_msc flags volume_real")

# One tick per symbol of the default positions.
DEFAULT_TICKS = {
    "USDCHF": {"time": 1772618400, "bid": 0.98528, "ask": 0.98532, "last": 0.0, "volume": 0,
               "time_msc": 1772618400250, "flags": 6, "volume_real": 0.0},
    "XAUUSD": {"time": 1772618399, "bid": 2419.91, "ask": 2420.14, "last": 0.0, "volume": 0,
               "time_msc": 1772618399875, "flags": 6, "volume_real": 0.0},
    "GBPJPY": {"time": 1772618398, "bid": 142.513, "ask": 142.531, "last": 0.0, "volume": 0,
               "time_msc": 1772618398001, "flags": 6, "volume_real": 0.0},
}

DEFAULT_ACCOUNT = {
    "login": 25115284, "trade_mode": 0, "leverage": 100, "limit_orders": 200,
    "margin_so_mode": 0, "trade_allowed": True, "trade_expert": True, "margin_mode": 2,
    "currency_digits": 2, "fifo_close": False, "balance": 99511.4, "credit": 0.0,
    "profit": 6.01, "equity": 99517.41, "margin": 24.16, "margin_free": 99493.25,
    "margin_level": 411909.8, "margin_so_call": 50.0, "margin_so_so": 30.0,
    "margin_initial": 0.0, "margin_maintenance": 0.0, "assets": 0.0, "liabilities": 0.0,
    "commission_blocked": 0.0, "name": "Test", "server": "MetaQuotes-Demo",
    "currency": "USD", "company": "MetaQuotes Software Corp.",
}

DEFAULT_TERMINAL = {
    "community_account": False, "community_connection": False, "connected": True,
    "dlls_allowed": False, "trade_allowed": True, "tradeapi_disabled": False,
    "email_enabled": False, "ftp_enabled": False, "notifications_enabled": False,
    "mqid": False, "build": 4755, "maxbars": 100000, "codepage": 0, "ping_last": 31250,
    "community_balance": 0.0, "retransmission": 0.0, "company": "MetaQuotes Software Corp.",
    "name": "MetaTrader 5", "language": "English", "path": "C:\\MT5",
    "data_path": "C:\\MT5", "commondata_path": "C:\\MT5\\Common",
}

# None: read from the environment / defaults; set by tests to script the terminal.
POSITIONS = None
ORDERS = None
DEALS = None
ACCOUNT = None
TICKS = None
TERMINAL = None
INITIALIZE_OK = True
calls = []
_last_error = (1, "Success")


def _load(var, default):
    source = os.environ.get(var)
    if source == "error":
        return "error"
    if source == "empty":
        return []
    if source:
        with open(source, encoding="utf-8") as f:
            return json.load(f)
    return default() if callable(default) else default


def _file(path):
    def default():
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return default


def _positions():
    if POSITIONS is not None:
        return POSITIONS
    return _load("FAKE_MT5_POSITIONS", _file(_DEFAULT_POSITIONS))


def _orders():
    if ORDERS is not None:
        return ORDERS
    return _load("FAKE_MT5_ORDERS", _file(_DEFAULT_ORDERS))


def _deals():
    if DEALS is not None:
        return DEALS
    return _load("FAKE_MT5_DEALS", _file(_DEFAULT_DEALS))


def _account():
    if ACCOUNT is not None:
        return ACCOUNT
    return _load("FAKE_MT5_ACCOUNT", DEFAULT_ACCOUNT)


def _terminal():
    if TERMINAL is not None:
        return TERMINAL
    return _load("FAKE_MT5_TERMINAL", DEFAULT_TERMINAL)


def _ticks():
    if TICKS is not None:
        return TICKS
    return _load("FAKE_MT5_TICKS", DEFAULT_TICKS)


def initialize(*args, **kwargs):
    calls.append(("initialize", kwargs))
    return INITIALIZE_OK


def shutdown():
    calls.append(("shutdown", {}))


def last_error():
    return _last_error


def positions_get(*args, **kwargs):
    global _last_error
    calls.append(("positions_get", kwargs))
    data = _positions()
    if data == "error":
        _last_error = (-10004, "No IPC connection")
        return None
    return tuple(TradePosition(**record) for record in data)


def orders_get(*args, **kwargs):
    global _last_error
    calls.append(("orders_get", kwargs))
    data = _orders()
    if data == "error":
        _last_error = (-10004, "No IPC connection")
        return None
    return tuple(TradeOrder(**record) for record in data)


def history_deals_get(date_from=None, date_to=None, **kwargs):
    global _last_error
    calls.append(("history_deals_get", dict(kwargs, date_from=date_from, date_to=date_to)))
    data = _deals()
    if data == "error":
        _last_error = (-10004, "No IPC connection")
        return None
    return tuple(TradeDeal(**record) for record in data)


def account_info():
    global _last_error
    calls.append(("account_info", {}))
    data = _account()
    if data == "error":
        _last_error = (-10004, "No IPC connection")
        return None
    return AccountInfo(**data)


def symbol_info_tick(symbol):
    global _last_error
    calls.append(("symbol_info_tick", {"symbol": symbol}))
    data = _ticks()
    if data == "error" or symbol not in data:
        _last_error = (-1, "Terminal: Call failed")
        return None
    return Tick(**data[symbol])


def terminal_info():
    global _last_error
    calls.append(("terminal_info", {}))
    data = _terminal()
    if data == "error":
        _last_error = (-10004, "No IPC connection")
        return None
    return TerminalInfo(**data)
