"""Tests of the mod_wsgi_telemetry package. Run from the repository root:

    python3 -m unittest discover -s python/tests -v

(tests/tests/python_package.rs runs exactly that, and a pip install.)

Without the module every call is a no-op; with a stand-in for the module
(fake_module.c, built here with gcc and loaded RTLD_GLOBAL as Apache loads
modules) the calls reach the C ABI with exactly the bytes, length and double
the application passed, and the return codes turn into what
docs/app-metrics.md says.
"""

import ctypes
import importlib
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
sys.path.insert(0, PACKAGE_ROOT)

INCR, SET, RECORD = 1, 2, 3


class Call(ctypes.Structure):
    _fields_ = [
        ("fn", ctypes.c_int),
        ("name", ctypes.c_char * 128),
        ("name_len", ctypes.c_size_t),
        ("value", ctypes.c_double),
    ]


def build_fake(out_dir):
    lib = os.path.join(out_dir, "libmwt_fake.so")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", lib,
         os.path.join(HERE, "fake_module.c")],
        check=True,
    )
    return lib


class WithoutTheModule(unittest.TestCase):
    """A fresh interpreter with no module symbols: no-ops that never raise."""

    def test_calls_are_no_ops(self):
        script = (
            "import mod_wsgi_telemetry as m\n"
            "assert m.enabled() is False\n"
            "assert m.incr('orders') is None\n"
            "assert m.incr('bad name', 'not a number') is None\n"
            "assert m.set(None, float('nan')) is None\n"
            "assert m.record('', -1) is None\n"
            "try:\n"
            "    m.check_name('bad name')\n"
            "except ValueError as e:\n"
            "    print('check_name:', e)\n"
            "print('ok')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PACKAGE_ROOT, capture_output=True, text=True,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("check_name: metric name 'bad name'", out.stdout)
        self.assertTrue(out.stdout.endswith("ok\n"), out.stdout)


class LoadedLocally(unittest.TestCase):
    """The module loaded RTLD_LOCAL (not in the global scope): the package
    finds it mapped in the process, by either file name (the installed
    ``mod_wsgi_telemetry.so``, cargo's ``libmod_wsgi_telemetry.so``)."""

    def test_the_mapped_module_is_found(self):
        with tempfile.TemporaryDirectory() as d:
            fake = build_fake(d)
            for name in ("mod_wsgi_telemetry.so", "libmod_wsgi_telemetry.so"):
                path = os.path.join(d, name)
                os.link(fake, path)
                script = (
                    "import ctypes, sys\n"
                    "lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)\n"
                    "try:\n"
                    "    ctypes.PyDLL(None).mwt_app_abi_version\n"
                    "    sys.exit('the stand-in is in the global scope')\n"
                    "except AttributeError:\n"
                    "    pass\n"
                    "import mod_wsgi_telemetry as m\n"
                    "assert m.enabled(), 'not found'\n"
                    "m.incr('orders', 2)\n"
                    "assert ctypes.c_int.in_dll(lib, 'fake_calls').value == 1\n"
                    "print('ok')\n"
                )
                out = subprocess.run(
                    [sys.executable, "-c", script, path],
                    cwd=PACKAGE_ROOT, capture_output=True, text=True,
                )
                self.assertEqual(out.returncode, 0, name + ": " + out.stderr)
                self.assertEqual(out.stdout, "ok\n", name)
                os.unlink(path)


class WithTheModule(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.lib = ctypes.CDLL(build_fake(cls.dir.name), mode=ctypes.RTLD_GLOBAL)
        cls.log = (Call * 64).in_dll(cls.lib, "fake_log")
        import mod_wsgi_telemetry
        cls.m = mod_wsgi_telemetry

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def knob(self, name):
        return ctypes.c_int.in_dll(self.lib, name)

    def setUp(self):
        self.knob("fake_calls").value = 0
        self.knob("fake_return").value = 0
        self.knob("fake_abi_version").value = 1
        self.knob("fake_enabled").value = 1
        importlib.reload(self.m)
        self.assertTrue(self.m.enabled())

    def calls(self):
        n = self.knob("fake_calls").value
        return [
            (c.fn, bytes(c.name[:c.name_len]), c.name_len, c.value)
            for c in self.log[:n]
        ]

    def test_arguments_reach_the_abi_exactly(self):
        m = self.m
        self.assertIsNone(m.incr("orders.placed"))
        m.incr("bytes:in/total-2", 4096)
        m.set("queue.depth", -2.5)
        m.record("payment.{0}", 0.042)
        m.incr("x" * 64, 2 ** 53)
        m.set("queue.depth", True)
        with self.assertRaisesRegex(TypeError, r"set\(\) needs a value"):
            m.set("queue.depth")
        self.assertEqual((m.incr.__name__, m.record.__name__), ("incr", "record"))
        self.assertEqual(self.calls(), [
            (INCR, b"orders.placed", 13, 1.0),
            (INCR, b"bytes:in/total-2", 16, 4096.0),
            (SET, b"queue.depth", 11, -2.5),
            (RECORD, b"payment.{0}", 11, 0.042),
            (INCR, b"x" * 64, 64, 9007199254740992.0),
            (SET, b"queue.depth", 11, 1.0),
        ])

    def test_bad_names_raise_before_the_call(self):
        for bad in ["", "a b", "x" * 65, "caf\u00e9", "{0}{0}", "a{1}",
                    "line\nbreak", None, b"bytes", 3]:
            for fn in (self.m.incr, self.m.set, self.m.record):
                with self.assertRaises(ValueError, msg=repr(bad)):
                    fn(bad, 1)
        self.assertEqual(self.calls(), [])

    def test_a_value_that_is_not_a_number(self):
        with self.assertRaisesRegex(ValueError, "must be a number"):
            self.m.incr("n", "7")
        self.m.incr("n")  # now a known name: the fast path
        for bad in ("7", None, [1]):
            with self.assertRaisesRegex(ValueError, "must be a number"):
                self.m.incr("n", bad)
        self.assertEqual(self.calls(), [(INCR, b"n", 1, 1.0)])

    def test_return_codes(self):
        m = self.m
        self.knob("fake_return").value = -2
        with self.assertRaisesRegex(ValueError, r"finite number >= 0"):
            m.record("lat", -1.0)
        with self.assertRaisesRegex(ValueError, r"must be a finite number "):
            m.set("depth", float("inf"))
        self.knob("fake_return").value = -3
        with self.assertRaisesRegex(ValueError, "another kind of metric"):
            m.set("orders", 1)
        self.knob("fake_return").value = -1
        with self.assertRaisesRegex(ValueError, "refused by the module"):
            m.incr("orders")
        self.knob("fake_return").value = 1  # table full: counted there
        self.assertIsNone(m.incr("one.too.many"))
        self.assertEqual(len(self.calls()), 5)

    def test_disabled_answer_turns_calls_into_no_ops(self):
        self.knob("fake_return").value = 2
        self.assertIsNone(self.m.incr("orders"))
        self.assertFalse(self.m.enabled())
        self.m.incr("orders")
        self.m.record("lat", 0.1)
        self.assertEqual(len(self.calls()), 1)

    def test_module_off_or_another_abi_version(self):
        for knob, value in (("fake_enabled", 0), ("fake_abi_version", 2)):
            self.knob(knob).value = value
            importlib.reload(self.m)
            self.assertFalse(self.m.enabled(), knob)
            self.m.incr("bad name")
            self.m.set("depth", 1)
            self.assertEqual(self.calls(), [], knob)
            self.knob(knob).value = 1

    def test_enabled_follows_the_module(self):
        self.knob("fake_enabled").value = 0
        self.assertFalse(self.m.enabled())
        self.m.incr("orders")
        self.assertEqual(self.calls(), [])


if __name__ == "__main__":
    unittest.main()
