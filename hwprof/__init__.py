"""hwprof: hardware latency profiling and prediction for hardware-aware NAS."""

from hwprof.errors import HwprofError
from hwprof.ops import OpSpec, decode, encode
from hwprof.spaces import Arch, Space, list_spaces, space

__version__ = "0.1.0"

__all__ = ["Arch", "HwprofError", "OpSpec", "Space", "__version__", "decode", "encode", "list_spaces", "space"]
