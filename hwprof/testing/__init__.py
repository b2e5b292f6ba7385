"""Stand-ins for hardware that tests and demos run against (never a default device).

* :mod:`hwprof.testing.fake_adb` — :class:`~hwprof.testing.fake_adb.FakePhone`, a
  loopback adb server that speaks the adb host protocol and runs shell
  commands in a sandbox folder on this machine.
* :mod:`hwprof.testing.fake_benchmark_model` — the stand-in ``benchmark_model``
  installed on that phone: LiteRT on this CPU, the real tool's output format.
* :mod:`hwprof.testing.fake_board` — :class:`~hwprof.testing.fake_board.FakeBoard`, a
  loopback SSH server (asyncssh) running commands in a sandbox folder, with the
  stand-in :mod:`~hwprof.testing.fake_trtexec` (ONNX Runtime on this CPU, trtexec's
  format) and :mod:`~hwprof.testing.fake_tegrastats`.

Imports no other hwprof package: it stands where the hardware would.
"""
