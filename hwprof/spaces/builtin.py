"""The built-in search spaces of the papers, declared as data (see ``shared/SPACES.md``).

Importing this module registers them; :mod:`hwprof.spaces` does so on import.
"""

from __future__ import annotations

from hwprof.spaces.space import Fixed, Space, Stage, register

def _stages(layers, channels, strides, act, se=None) -> tuple[Stage, ...]:
    acts = act if isinstance(act, (list, tuple)) else [act] * len(layers)
    ses = se or [False] * len(layers)
    return tuple(Stage(n, c, s, a, e) for n, c, s, a, e in zip(layers, channels, strides, acts, ses))


_MB6 = ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6")
_FBNET_CANDS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")


def _fbnet(name: str, res: int, stem_stride: int, strides, head: int, classes: int) -> Space:
    return Space(
        name,
        (res,),
        _FBNET_CANDS,
        stem=(Fixed("conv", 16, 3, stem_stride, act="relu"),),
        stages=_stages([1, 4, 4, 4, 4, 4, 1], [16, 24, 32, 64, 112, 184, 352], strides, "relu"),
        head=(Fixed("conv", head, act="relu"), Fixed("pool"), Fixed("fc", classes)),
        skip="conv",
        description=f"FBNet space as in HW-NAS-Bench, input {res}",
    )



register(
    Space(
        "proxylessnas",
        (224,),
        _MB6 + ("skip",),
        stem=(Fixed("conv", 32, 3, 2, act="relu6"), Fixed("mbconv", 16, 3, 1, 1, act="relu6")),
        stages=_stages([4, 4, 4, 4, 4, 1], [24, 40, 80, 96, 192, 320], [2, 2, 2, 1, 2, 1], "relu6"),
        head=(Fixed("conv", 1280, act="relu6"), Fixed("pool"), Fixed("fc", 1000)),
        description="ProxylessNAS mobile space (ImageNet)",
    )
)
register(_fbnet("fbnet", 224, 2, [1, 2, 2, 2, 1, 2, 1], 1984, 1000))
register(_fbnet("fbnet-c100", 32, 1, [1, 1, 2, 2, 1, 2, 1], 1504, 100))
register(
    Space(
        "spnas",
        (224,),
        ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "skip"),
        stem=(Fixed("conv", 32, 3, 2, act="relu"), Fixed("mbconv", 16, 3, 1, 1, act="relu")),
        stages=_stages([4] * 5, [24, 40, 80, 96, 192], [2, 2, 2, 1, 2], "relu"),
        head=(
            Fixed("mbconv", 320, 3, 1, 6, act="relu"),
            Fixed("conv", 1280, act="relu"),
            Fixed("pool"),
            Fixed("fc", 1000),
        ),
        description="Single-Path NAS space (MnasNet-like, ImageNet); layers 1-20 of blocks 0-21",
    )
)
register(
    Space(
        "lightnas",
        (224,),
        _MB6 + ("skip",),
        stem=(Fixed("conv", 16, 3, 2, act="relu6"), Fixed("mbconv", 16, 3, 1, 1, act="relu6")),
        stages=_stages([2, 3, 4, 3, 4, 4, 1], [24, 48, 72, 128, 160, 176, 384], [2, 2, 2, 1, 2, 1, 1], "relu6"),
        head=(
            Fixed("conv", 1984, act="relu6"),
            Fixed("pool"),
            Fixed("fc", 1280, act="relu6"),
            Fixed("fc", 1000),
        ),
        skip="conv",
        description="LightNAS space (ImageNet)",
    )
)
register(
    Space(
        "tfnas",
        (224,),
        ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k3_e3_se", "k3_e6_se", "k5_e3_se", "k5_e6_se", "skip"),
        stem=(Fixed("conv", 32, 3, 2, act="relu"), Fixed("mbconv", 16, 3, 1, 1, se=8, act="relu")),
        stages=_stages(
            [2, 3, 4, 4, 4, 1],
            [24, 40, 80, 112, 192, 320],
            [2, 2, 2, 1, 2, 1],
            ["relu", "swish", "swish", "swish", "swish", "swish"],
        ),
        head=(Fixed("conv", 1280, act="swish"), Fixed("pool"), Fixed("fc", 1000)),
        skip="depth",
        min_depth=1,
        se_rule="tfnas",
        width="mid",
        description="TF-NAS space (EfficientNet-like, ImageNet); skip = dropped layer, @mid = elastic width",
    )
)
register(
    Space(
        "spos",
        (224,),
        ("shuffle_k3", "shuffle_k5", "shuffle_k7", "xception"),
        # SPOS's released network has no max pool after the stem (unlike ShuffleNetV2): four stride-2
        # stages after a stride-2 conv reach 7×7 at 224, and its supernet asserts input % 32 == 0.
        stem=(Fixed("conv", 16, 3, 2, act="relu"),),
        stages=_stages([4, 4, 8, 4], [64, 160, 320, 640], [2, 2, 2, 2], "relu"),
        head=(Fixed("conv", 1024, act="relu"), Fixed("pool"), Fixed("fc", 1000)),
        skip="none",
        width="scale",
        description="Single Path One-Shot space (ShuffleNetV2-like, ImageNet); @x = channel multiplier",
    )
)
register(
    Space(
        "ofa-mbv3",
        tuple(range(128, 225, 4)),
        tuple(f"k{k}_e{e}" for k in (3, 5, 7) for e in (3, 4, 6)) + ("skip",),
        stem=(Fixed("conv", 16, 3, 2, act="hswish"), Fixed("mbconv", 16, 3, 1, 1, act="relu")),
        stages=_stages(
            [4] * 5,
            [24, 40, 80, 112, 160],
            [2, 2, 2, 1, 2],
            ["relu", "relu", "hswish", "hswish", "hswish"],
            [False, True, False, True, True],
        ),
        head=(
            Fixed("conv", 960, act="hswish"),
            Fixed("pool"),
            Fixed("conv", 1280, act="hswish"),
            Fixed("fc", 1000),
        ),
        skip="depth",
        min_depth=2,
        description="Once-for-All MobileNetV3 space, width 1.0, elastic resolution and depth",
    )
)
