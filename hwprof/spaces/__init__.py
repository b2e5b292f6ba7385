"""Search spaces: operators (:mod:`.ops`), the Space machinery (:mod:`.space`), the
built-in declarations (:mod:`.builtin`) and torch modules for every op kind
(:mod:`.modules`).

The bottom of the data flow: imports only :mod:`hwprof.errors`. Everything else
may import it, except :mod:`hwprof.devices` (a device never knows about spaces).
"""

from __future__ import annotations

from hwprof.spaces import builtin as _builtin  # noqa: F401  (registers the built-in spaces)
from hwprof.spaces.ops import OpSpec, decode, encode
from hwprof.spaces.space import SCALES, SPACES, Arch, Fixed, LayerGeom, Space, Stage, list_spaces, register, space

__all__ = [
    "Arch", "Fixed", "LayerGeom", "OpSpec", "SCALES", "SPACES", "Space", "Stage",
    "decode", "encode", "list_spaces", "register", "space",
]
