"""Tests of mt5_export.py against the stand-in MetaTrader5 module in tests/fake.

Run from the repository root:
    PYTHONPATH=bridge/tests/fake python3 -m unittest discover -s bridge/tests -v
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BRIDGE = os.path.dirname(HERE)
FAKE = os.path.join(HERE, "fake")
sys.path[:0] = [BRIDGE, FAKE]

import MetaTrader5  # noqa: E402  (the stand-in, from FAKE)
import mt5_export  # noqa: E402

FIXTURE = os.path.join(BRIDGE, "..", "examples", "data", "mt5-positions.json")
ORDERS_FIXTURE = os.path.join(BRIDGE, "..", "examples", "data", "mt5-orders.json")
DEALS_FIXTURE = os.path.join(BRIDGE, "..", "examples", "data", "mt5-deals.json")
FILES = ["account.json", "deals.json", "orders.json", "positions.json", "quotes.json"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.dir.name, "acc-1")
        MetaTrader5.POSITIONS = None
        MetaTrader5.ACCOUNT = None
        MetaTrader5.TERMINAL = None
        MetaTrader5.TICKS = None
        MetaTrader5.ORDERS = None
        MetaTrader5.DEALS = None
        MetaTrader5.INITIALIZE_OK = True
        self.assertEqual(MetaTrader5.__file__, os.path.join(FAKE, "MetaTrader5.py"))

    def tearDown(self):
        self.dir.cleanup()

    def test_writes_positions_get_and_account_info_as_records(self):
        self.assertTrue(mt5_export.export_once(self.out))
        positions = read(os.path.join(self.out, "positions.json"))
        self.assertEqual(positions["positions"], read(FIXTURE))
        account = read(os.path.join(self.out, "account.json"))
        self.assertEqual(account["equity"], 99517.41)
        self.assertEqual(account["margin_free"], 99493.25)
        self.assertEqual(sorted(os.listdir(self.out)), FILES)

    def test_quotes_are_the_ticks_of_the_held_symbols_of_the_same_round(self):
        self.assertTrue(mt5_export.export_once(self.out))
        with open(os.path.join(self.out, "positions.json"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        quotes = read(os.path.join(self.out, "quotes.json"))
        self.assertEqual(quotes["positions_sha256"], digest)
        by_symbol = {q["symbol"]: q for q in quotes["quotes"]}
        self.assertEqual(sorted(by_symbol), ["GBPJPY", "USDCHF", "XAUUSD"])
        self.assertEqual(
            by_symbol["USDCHF"],
            dict(MetaTrader5.DEFAULT_TICKS["USDCHF"], symbol="USDCHF"))
        asked = [c[1]["symbol"] for c in MetaTrader5.calls if c[0] == "symbol_info_tick"]
        self.assertEqual(asked[-3:], ["GBPJPY", "USDCHF", "XAUUSD"])

    def test_a_missing_or_unwritable_tick_leaves_only_its_symbol_out(self):
        ticks = dict(MetaTrader5.DEFAULT_TICKS)
        del ticks["XAUUSD"]
        ticks["GBPJPY"] = dict(ticks["GBPJPY"], ask=float("nan"))
        MetaTrader5.TICKS = ticks
        with self.assertLogs("mt5_export", level="WARNING") as logs:
            self.assertTrue(mt5_export.export_once(self.out))
        said = "\n".join(logs.output)
        self.assertIn("symbol_info_tick(XAUUSD) failed", said)
        self.assertIn("GBPJPY", said)
        quotes = read(os.path.join(self.out, "quotes.json"))
        self.assertEqual([q["symbol"] for q in quotes["quotes"]], ["USDCHF"])
        self.assertEqual(read(os.path.join(self.out, "positions.json"))["positions"], read(FIXTURE))
        MetaTrader5.TICKS = "error"
        with self.assertLogs("mt5_export", level="WARNING"):
            self.assertTrue(mt5_export.export_once(self.out))
        self.assertEqual(read(os.path.join(self.out, "quotes.json"))["quotes"], [])

    def test_both_files_carry_the_same_round_and_each_export_a_new_one(self):
        self.assertTrue(mt5_export.export_once(self.out))
        first = read(os.path.join(self.out, "positions.json"))["export_round"]
        self.assertIsInstance(first, str)
        self.assertEqual(read(os.path.join(self.out, "account.json"))["export_round"], first)
        self.assertTrue(mt5_export.export_once(self.out))
        second = read(os.path.join(self.out, "positions.json"))["export_round"]
        self.assertNotEqual(second, first)
        self.assertEqual(read(os.path.join(self.out, "account.json"))["export_round"], second)

    def test_the_account_file_carries_the_margin_mode(self):
        for mode in (0, 1, 2):
            MetaTrader5.ACCOUNT = dict(MetaTrader5.DEFAULT_ACCOUNT, margin_mode=mode)
            self.assertTrue(mt5_export.export_once(self.out))
            self.assertEqual(read(os.path.join(self.out, "account.json"))["margin_mode"], mode)

    def test_orders_and_deals_are_written_in_the_same_round(self):
        self.assertTrue(mt5_export.export_once(self.out))
        round_id = read(os.path.join(self.out, "positions.json"))["export_round"]
        orders = read(os.path.join(self.out, "orders.json"))
        self.assertEqual(orders["export_round"], round_id)
        self.assertEqual(orders["orders"], read(ORDERS_FIXTURE))
        deals = read(os.path.join(self.out, "deals.json"))
        self.assertEqual(deals["export_round"], round_id)
        self.assertEqual(deals["deals"], read(DEALS_FIXTURE))

    def test_deals_are_those_of_a_recent_window(self):
        MetaTrader5.calls.clear()
        before = time.time()
        self.assertTrue(mt5_export.export_once(self.out, deals_hours=6))
        asked = [c[1] for c in MetaTrader5.calls if c[0] == "history_deals_get"]
        self.assertEqual(len(asked), 1)
        date_from, date_to = asked[0]["date_from"], asked[0]["date_to"]
        self.assertIsNotNone(date_from.tzinfo)
        self.assertAlmostEqual(date_from.timestamp(), before - 6 * 3600, delta=60)
        self.assertGreater(date_to.timestamp(), time.time(), "up to now and beyond")
        deals = read(os.path.join(self.out, "deals.json"))
        self.assertEqual(deals["date_from"], int(date_from.timestamp()))
        self.assertEqual(deals["date_to"], int(date_to.timestamp()))
        self.assertEqual(mt5_export.parse_args(
            ["--out", "o", "--account", "a"]).deals_hours, 24.0)
        with self.assertRaises(SystemExit), open(os.devnull, "w") as null:
            stderr, sys.stderr = sys.stderr, null
            try:
                mt5_export.parse_args(["--out", "o", "--account", "a", "--deals-hours", "0"])
            finally:
                sys.stderr = stderr

    def test_no_orders_or_deals_are_empty_arrays(self):
        MetaTrader5.ORDERS = []
        MetaTrader5.DEALS = []
        self.assertTrue(mt5_export.export_once(self.out))
        self.assertEqual(read(os.path.join(self.out, "orders.json"))["orders"], [])
        self.assertEqual(read(os.path.join(self.out, "deals.json"))["deals"], [])

    def test_an_orders_or_deals_error_writes_nothing(self):
        self.assertTrue(mt5_export.export_once(self.out))
        before = {f: read(os.path.join(self.out, f)) for f in FILES}
        for failing in ("ORDERS", "DEALS"):
            setattr(MetaTrader5, failing, "error")
            with self.assertLogs("mt5_export", level="ERROR") as logs:
                self.assertFalse(mt5_export.export_once(self.out))
            self.assertIn("failed", "\n".join(logs.output))
            setattr(MetaTrader5, failing, None)
            self.assertEqual({f: read(os.path.join(self.out, f)) for f in FILES}, before)

    def test_no_positions_is_an_empty_array(self):
        MetaTrader5.POSITIONS = []
        self.assertTrue(mt5_export.export_once(self.out))
        self.assertEqual(read(os.path.join(self.out, "positions.json"))["positions"], [])
        self.assertEqual(read(os.path.join(self.out, "quotes.json"))["quotes"], [])

    def test_a_terminal_error_writes_nothing_and_keeps_the_old_files(self):
        self.assertTrue(mt5_export.export_once(self.out))
        before = read(os.path.join(self.out, "positions.json"))
        MetaTrader5.POSITIONS = "error"
        with self.assertLogs("mt5_export", level="ERROR") as logs:
            self.assertFalse(mt5_export.export_once(self.out))
        self.assertIn("No IPC connection", "\n".join(logs.output))
        self.assertEqual(read(os.path.join(self.out, "positions.json")), before)
        MetaTrader5.POSITIONS = None
        MetaTrader5.ACCOUNT = "error"
        with self.assertLogs("mt5_export", level="ERROR"):
            self.assertFalse(mt5_export.export_once(self.out))

    def test_the_account_file_says_whether_the_terminal_is_connected(self):
        self.assertTrue(mt5_export.export_once(self.out))
        account = read(os.path.join(self.out, "account.json"))
        self.assertIs(account["terminal_connected"], True)
        self.assertIs(account["terminal_trade_allowed"], True)
        MetaTrader5.TERMINAL = dict(MetaTrader5.DEFAULT_TERMINAL, connected=False,
                                    trade_allowed=False)
        MetaTrader5.POSITIONS = []
        self.assertTrue(mt5_export.export_once(self.out))
        account = read(os.path.join(self.out, "account.json"))
        self.assertIs(account["terminal_connected"], False)
        self.assertIs(account["terminal_trade_allowed"], False)
        self.assertEqual(read(os.path.join(self.out, "positions.json"))["positions"], [])

    def test_a_terminal_that_does_not_say_its_state_writes_nothing(self):
        self.assertTrue(mt5_export.export_once(self.out))
        before = read(os.path.join(self.out, "account.json"))
        MetaTrader5.TERMINAL = "error"
        with self.assertLogs("mt5_export", level="ERROR") as logs:
            self.assertFalse(mt5_export.export_once(self.out))
        self.assertIn("terminal_info failed", "\n".join(logs.output))
        self.assertEqual(read(os.path.join(self.out, "account.json")), before)

    def test_nan_is_refused_and_leaves_both_files_alone(self):
        self.assertTrue(mt5_export.export_once(self.out))
        records = read(FIXTURE)
        records[0]["price_open"] = float("nan")
        MetaTrader5.POSITIONS = records
        with self.assertLogs("mt5_export", level="ERROR"):
            self.assertFalse(mt5_export.export_once(self.out))
        self.assertEqual(read(os.path.join(self.out, "positions.json"))["positions"],
                         read(FIXTURE))
        self.assertEqual(sorted(os.listdir(self.out)), FILES)

    def test_replacement_is_atomic_and_leaves_no_temp_files(self):
        os.makedirs(self.out)
        target = os.path.join(self.out, "positions.json")
        mt5_export.write_atomic(target, [1])
        with open(target, encoding="utf-8") as held:  # a reader holding the old file
            mt5_export.write_atomic(target, [2])
            self.assertEqual(json.load(held), [1])
        self.assertEqual(read(target), [2])
        self.assertEqual(os.listdir(self.out), ["positions.json"])

    def test_failed_write_removes_its_temp_file(self):
        os.makedirs(self.out)
        with self.assertRaises(ValueError):
            mt5_export.write_atomic(os.path.join(self.out, "x.json"), [float("inf")])
        self.assertEqual(os.listdir(self.out), [])

    def test_account_ids_must_name_a_directory(self):
        for bad in ["", ".", "..", "a/b", "a\\b", "x y"]:
            self.assertFalse(mt5_export.safe_account_dir(bad), bad)
        self.assertTrue(mt5_export.safe_account_dir("acc-1.demo_2"))

    def test_the_password_comes_from_the_environment(self):
        MetaTrader5.calls.clear()
        args = mt5_export.parse_args(
            ["--out", self.dir.name, "--account", "a", "--login", "42", "--password-env", "T_PW"])
        os.environ["T_PW"] = "pw"
        try:
            self.assertTrue(mt5_export.connect(args))
        finally:
            del os.environ["T_PW"]
        self.assertEqual(MetaTrader5.calls[0], ("initialize", {"login": 42, "password": "pw"}))

    def test_the_script_runs_once_as_a_process(self):
        env = dict(os.environ, PYTHONPATH=FAKE)
        script = os.path.join(BRIDGE, "mt5_export.py")
        run = subprocess.run(
            [sys.executable, script, "--out", self.dir.name, "--account", "acc-1", "--once"],
            env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(read(os.path.join(self.out, "positions.json"))["positions"],
                         read(FIXTURE))
        self.assertEqual(len(read(os.path.join(self.out, "quotes.json"))["quotes"]), 3)
        env["FAKE_MT5_POSITIONS"] = "error"
        run = subprocess.run(
            [sys.executable, script, "--out", self.dir.name, "--account", "acc-1", "--once"],
            env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertIn("positions_get failed", run.stderr)


if __name__ == "__main__":
    unittest.main()
