"""The eight search spaces against the SPACES.md spec, and Arch parsing, sampling and views.

The expected figures below are written out from SPACES.md (and, for
``help-fbnet``, from its data README), not computed by hwprof.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprof.errors import HwprofError, SpaceError
from hwprof.spaces.ops import OpSpec
from hwprof.spaces import SCALES, SPACES, Arch, list_spaces, register, space

MB6 = ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6")
FBNET = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")


def walk(h: int, c: int, layers, channels, strides, acts) -> list[tuple[int, int, int, int, str]]:
    """(input H, cin, cout, stride, act) of every searchable layer; stride on a stage's first layer."""
    acts = acts if isinstance(acts, list) else [acts] * len(layers)
    out = []
    for n, cout, s, act in zip(layers, channels, strides, acts):
        for p in range(n):
            stride = s if p == 0 else 1
            out.append((h, c, cout, stride, act))
            h, c = -(-h // stride), cout
    return out


# lightnas: the explicit per-layer list of SPACES.md ("Cin→Cout @ input H, stride")
LIGHTNAS_LAYERS = (
    [(112, 16, 24, 2), (56, 24, 24, 1), (56, 24, 48, 2)]
    + [(28, 48, 48, 1)] * 2
    + [(28, 48, 72, 2)]
    + [(14, 72, 72, 1)] * 3
    + [(14, 72, 128, 1)]
    + [(14, 128, 128, 1)] * 2
    + [(14, 128, 160, 2)]
    + [(7, 160, 160, 1)] * 3
    + [(7, 160, 176, 1)]
    + [(7, 176, 176, 1)] * 3
    + [(7, 176, 384, 1)]
)

EXPECTED = {
    "proxylessnas": dict(
        resolutions=(224,),
        candidates=MB6 + ("skip",),
        stem=[
            "conv:h224:w224:ci3:co32:m0:k3:s2:g1:se0:relu6:b1",
            "mbconv:h112:w112:ci32:co16:m32:k3:s1:g1:se0:relu6:b1",
        ],
        layers=walk(112, 16, [4, 4, 4, 4, 4, 1], [24, 40, 80, 96, 192, 320], [2, 2, 2, 1, 2, 1], "relu6"),
        head=[
            "conv:h7:w7:ci320:co1280:m0:k1:s1:g1:se0:relu6:b1",
            "pool:h7:w7:ci1280:co1280:m0:k1:s1:g1:se0:none:b1",
            "fc:h1:w1:ci1280:co1000:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
    "fbnet": dict(
        resolutions=(224,),
        candidates=FBNET,
        stem=["conv:h224:w224:ci3:co16:m0:k3:s2:g1:se0:relu:b1"],
        layers=walk(112, 16, [1, 4, 4, 4, 4, 4, 1], [16, 24, 32, 64, 112, 184, 352], [1, 2, 2, 2, 1, 2, 1], "relu"),
        head=[
            "conv:h7:w7:ci352:co1984:m0:k1:s1:g1:se0:relu:b1",
            "pool:h7:w7:ci1984:co1984:m0:k1:s1:g1:se0:none:b1",
            "fc:h1:w1:ci1984:co1000:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
    "fbnet-c100": dict(
        resolutions=(32,),
        candidates=FBNET,
        stem=["conv:h32:w32:ci3:co16:m0:k3:s1:g1:se0:relu:b1"],
        layers=walk(32, 16, [1, 4, 4, 4, 4, 4, 1], [16, 24, 32, 64, 112, 184, 352], [1, 1, 2, 2, 1, 2, 1], "relu"),
        head=[
            "conv:h4:w4:ci352:co1504:m0:k1:s1:g1:se0:relu:b1",
            "pool:h4:w4:ci1504:co1504:m0:k1:s1:g1:se0:none:b1",
            "fc:h1:w1:ci1504:co100:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
    "spnas": dict(
        resolutions=(224,),
        candidates=("k3_e3", "k3_e6", "k5_e3", "k5_e6", "skip"),
        stem=["conv:h224:w224:ci3:co32:m0:k3:s2:g1:se0:relu:b1", "mbconv:h112:w112:ci32:co16:m32:k3:s1:g1:se0:relu:b1"],
        layers=walk(112, 16, [4] * 5, [24, 40, 80, 96, 192], [2, 2, 2, 1, 2], "relu"),
        head=[
            "mbconv:h7:w7:ci192:co320:m1152:k3:s1:g1:se0:relu:b1",
            "conv:h7:w7:ci320:co1280:m0:k1:s1:g1:se0:relu:b1",
            "pool:h7:w7:ci1280:co1280:m0:k1:s1:g1:se0:none:b1",
            "fc:h1:w1:ci1280:co1000:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
    "lightnas": dict(
        resolutions=(224,),
        candidates=MB6 + ("skip",),
        stem=[
            "conv:h224:w224:ci3:co16:m0:k3:s2:g1:se0:relu6:b1",
            "mbconv:h112:w112:ci16:co16:m16:k3:s1:g1:se0:relu6:b1",
        ],
        layers=[(*layer, "relu6") for layer in LIGHTNAS_LAYERS],
        head=[
            "conv:h7:w7:ci384:co1984:m0:k1:s1:g1:se0:relu6:b1",
            "pool:h7:w7:ci1984:co1984:m0:k1:s1:g1:se0:none:b1",
            "fc:h1:w1:ci1984:co1280:m0:k1:s1:g1:se0:relu6:b1",
            "fc:h1:w1:ci1280:co1000:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
    "tfnas": dict(
        resolutions=(224,),
        candidates=("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k3_e3_se", "k3_e6_se", "k5_e3_se", "k5_e6_se", "skip"),
        stem=["conv:h224:w224:ci3:co32:m0:k3:s2:g1:se0:relu:b1", "mbconv:h112:w112:ci32:co16:m32:k3:s1:g1:se8:relu:b1"],
        layers=walk(
            112, 16, [2, 3, 4, 4, 4, 1], [24, 40, 80, 112, 192, 320], [2, 2, 2, 1, 2, 1], ["relu"] + ["swish"] * 5
        ),
        head=[
            "conv:h7:w7:ci320:co1280:m0:k1:s1:g1:se0:swish:b1",
            "pool:h7:w7:ci1280:co1280:m0:k1:s1:g1:se0:none:b1",
            "fc:h1:w1:ci1280:co1000:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
    # SPOS's released code: stem conv s2, no max pool (SPACES.md's "max pool as in ShuffleNetV2" would end at 4×4)
    "spos": dict(
        resolutions=(224,),
        candidates=("shuffle_k3", "shuffle_k5", "shuffle_k7", "xception"),
        stem=["conv:h224:w224:ci3:co16:m0:k3:s2:g1:se0:relu:b1"],
        layers=walk(112, 16, [4, 4, 8, 4], [64, 160, 320, 640], [2, 2, 2, 2], "relu"),
        head=[
            "conv:h7:w7:ci640:co1024:m0:k1:s1:g1:se0:relu:b1",
            "pool:h7:w7:ci1024:co1024:m0:k1:s1:g1:se0:none:b1",
            "fc:h1:w1:ci1024:co1000:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
    "ofa-mbv3": dict(
        resolutions=tuple(range(128, 225, 4)),
        candidates=tuple(f"k{k}_e{e}" for k in (3, 5, 7) for e in (3, 4, 6)) + ("skip",),
        stem=[
            "conv:h224:w224:ci3:co16:m0:k3:s2:g1:se0:hswish:b1",
            "mbconv:h112:w112:ci16:co16:m16:k3:s1:g1:se0:relu:b1",
        ],
        layers=walk(112, 16, [4] * 5, [24, 40, 80, 112, 160], [2, 2, 2, 1, 2], ["relu", "relu"] + ["hswish"] * 3),
        head=[
            "conv:h7:w7:ci160:co960:m0:k1:s1:g1:se0:hswish:b1",
            "pool:h7:w7:ci960:co960:m0:k1:s1:g1:se0:none:b1",
            "conv:h1:w1:ci960:co1280:m0:k1:s1:g1:se0:hswish:b1",
            "fc:h1:w1:ci1280:co1000:m0:k1:s1:g1:se0:none:b1",
        ],
    ),
}
NAMES = sorted(EXPECTED)
LAYER_COUNTS = {"proxylessnas": 21, "fbnet": 22, "fbnet-c100": 22, "spnas": 20, "lightnas": 21, "tfnas": 18,
                "spos": 20, "ofa-mbv3": 20}


def test_registry_holds_exactly_the_eight_spaces() -> None:
    assert sorted(SPACES) == NAMES == list_spaces()
    assert list_spaces("fbnet*") == ["fbnet", "fbnet-c100"]
    with pytest.raises(SpaceError, match="known spaces: fbnet, fbnet-c100, lightnas"):
        space("mobilenet")
    with pytest.raises(SpaceError, match="already registered"):
        register(SPACES["spos"])


# -- declarations against SPACES.md -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_layer_count_candidates_and_resolution(name: str) -> None:
    sp, exp = space(name), EXPECTED[name]
    assert sp.num_layers == LAYER_COUNTS[name] == len(exp["layers"])
    assert sp.candidates == exp["candidates"]
    assert sp.max_choices == len(exp["candidates"])
    assert sp.resolutions == exp["resolutions"]
    assert sp.elastic_resolution == (name == "ofa-mbv3")


@pytest.mark.parametrize("name", NAMES)
def test_every_searchable_layer_shape(name: str) -> None:
    sp, exp = space(name), EXPECTED[name]
    got = [(g.h, g.cin, g.cout, g.stride, g.act) for g in sp.geometry()]
    assert got == exp["layers"]
    assert [g.index for g in sp.geometry()] == list(range(sp.num_layers))
    # every non-skip candidate op sits at that shape
    for g, (h, cin, cout, stride, act), ops in zip(sp.geometry(), exp["layers"], sp.choice_ops()):
        for op in ops:
            if op is not None and op.kind != "skip":
                assert (op.h, op.w, op.cin, op.cout, op.stride, op.act) == (h, h, cin, cout, stride, act)


@pytest.mark.parametrize("name", NAMES)
def test_stem_and_head(name: str) -> None:
    sp, exp = space(name), EXPECTED[name]
    res = max(exp["resolutions"])
    assert [op.encode() for op in sp.fixed_ops()] == exp["stem"] + exp["head"]
    arch = sp.sample(1, seed=3)[0]
    ops = sp.ops(arch)
    if sp.elastic_resolution:
        assert arch.resolution is not None
        res = arch.resolution
    assert ops[: len(exp["stem"])] == sp.fixed_ops(res)[: len(exp["stem"])]
    assert ops[len(exp["stem"]) + sp.num_layers :] == sp.fixed_ops(res)[len(exp["stem"]) :]
    assert sp.layer_ops(arch) == ops[len(exp["stem"]) : len(exp["stem"]) + sp.num_layers]
    assert ops[0].h == res == sp.input_resolution(arch)


def test_fbnet_c100_head_matches_help_fbnet_readme() -> None:
    sp = space("fbnet-c100")
    assert sp.fixed_ops()[0].stride == 1 and sp.default_resolution == 32
    assert [op.cout for op in sp.fixed_ops()][-2:] == [1504, 100]


def test_ofa_resolutions_are_128_to_224_step_4() -> None:
    assert space("ofa-mbv3").resolutions == tuple(range(128, 225, 4)) and len(space("ofa-mbv3").resolutions) == 25
    sp = space("ofa-mbv3")
    assert [g.h for g in sp.geometry(128)][:5] == [64, 32, 32, 32, 32]
    assert sp.fixed_ops(160)[0].h == 160


# -- skip legality ------------------------------------------------------------------------

SKIP_POSITIONS = {  # stage position → skip legal, from SPACES.md
    "proxylessnas": lambda p: p > 0,
    "spnas": lambda p: p > 0,
    "fbnet": lambda p: True,
    "fbnet-c100": lambda p: True,
    "lightnas": lambda p: True,
    "tfnas": lambda p: p >= 1,
    "ofa-mbv3": lambda p: p >= 2,
    "spos": lambda p: False,
}


@pytest.mark.parametrize("name", NAMES)
def test_where_skip_is_legal(name: str) -> None:
    sp = space(name)
    legal = [SKIP_POSITIONS[name](g.position) for g in sp.geometry()]
    has_skip = "skip" in sp.candidates
    assert [("skip" in sp.layer_choices(i)) for i in range(sp.num_layers)] == legal
    assert sp.mask.shape == (sp.num_layers, sp.max_choices) and sp.mask.dtype == bool
    for i in range(sp.num_layers):  # every other candidate is legal everywhere
        assert [c for c in sp.candidates if c != "skip"] == [c for c in sp.layer_choices(i) if c != "skip"]
        assert sp.layer_choices(i) == tuple(np.array(sp.candidates)[sp.mask[i]])
    if not has_skip:
        assert not any(legal)


def test_spnas_skip_excluded_from_layers_1_5_9_13_17() -> None:
    sp = space("spnas")
    no_skip = [i + 1 for i in range(sp.num_layers) if "skip" not in sp.layer_choices(i)]  # SPACES.md numbers 1–20
    assert no_skip == [1, 5, 9, 13, 17]


@pytest.mark.parametrize("name", ["fbnet", "fbnet-c100", "lightnas"])
def test_skip_is_identity_or_strided_1x1_conv(name: str) -> None:
    sp = space(name)
    act = "relu6" if name == "lightnas" else "relu"
    convs = 0
    for g in sp.geometry():
        op = sp.candidate_op(g, "skip")
        if g.stride == 1 and g.cin == g.cout:
            assert op == OpSpec("skip", g.h, g.h, g.cin, g.cout)
        else:
            convs += 1
            assert op == OpSpec("conv", g.h, g.h, g.cin, g.cout, 0, 1, g.stride, 1, 0, act)
    assert convs == sum(1 for g in sp.geometry() if g.position == 0 and (g.stride > 1 or g.cin != g.cout))
    assert convs > 0


@pytest.mark.parametrize("name", ["proxylessnas", "spnas", "tfnas", "ofa-mbv3"])
def test_legal_skip_is_an_identity(name: str) -> None:
    sp = space(name)
    for g in sp.geometry():
        if "skip" in sp.layer_choices(g.index):
            assert sp.candidate_op(g, "skip") == OpSpec("skip", g.h, g.h, g.cin, g.cin)


# -- SE, expansion and widths ------------------------------------------------------------------


def ofa_make_divisible(v: float, divisor: int = 8) -> int:
    """OFA/MobileNet rounding, written out independently of hwprof."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def test_ofa_make_divisible_reference_values() -> None:
    # MobileNetV3-Large SE widths: expansion 72 → 24, 120 → 32, 240 → 64 (reduction 4, divisor 8)
    assert [ofa_make_divisible(m / 4) for m in (72, 120, 240, 672, 960)] == [24, 32, 64, 168, 240]


@pytest.mark.parametrize("name", NAMES)
def test_se_channels_and_expansion(name: str) -> None:
    sp = space(name)
    for g, ops in zip(sp.geometry(), sp.choice_ops()):
        for cand, op in zip(sp.candidates, ops):
            if op is None or op.kind not in ("mbconv",):
                continue
            k, e = int(cand[1]), int(cand.split("_")[1][1:])
            assert (op.kernel, op.mid, op.groups) == (k, g.cin * e, 2 if "_g2" in cand else 1)
            if name == "tfnas":
                assert op.se == ({3: g.cin, 6: 2 * g.cin}[e] if cand.endswith("_se") else 0)
            elif name == "ofa-mbv3":
                assert op.se == (ofa_make_divisible(op.mid / 4) if g.stage in (1, 3, 4) else 0)
            else:
                assert op.se == 0
    if name == "ofa-mbv3":
        assert [st.se for st in sp.stages] == [False, True, False, True, True]


@pytest.mark.parametrize("layer", range(18))
def test_tfnas_mid_ranges(layer: int) -> None:
    sp = space("tfnas")
    g = sp.geometry()[layer]
    for cand in sp.candidates[:-1]:
        e = int(cand.split("_")[1][1:])
        lo, hi = sp.mid_range(g, cand)
        assert (lo, hi) == ((2 * g.cin, 4 * g.cin) if e == 3 else (4 * g.cin, 8 * g.cin))
        for mid in (lo, (lo + hi) // 2, hi):
            op = sp.candidate_op(g, cand, mid)
            assert op.mid == mid and op.se == sp.candidate_op(g, cand).se  # SE width does not follow mid
        for bad in (lo - 1, hi + 1, lo + 0.5):
            with pytest.raises(SpaceError, match=rf"integer in \[{lo}, {hi}\]"):
                sp.candidate_op(g, cand, bad)


def test_tfnas_mid_range_endpoints_from_the_released_tables() -> None:
    # TF-NAS latency tables hold mid channels 1..8·Cin for e6 blocks of 24→24 at 56×56 (SE 48 = 2·Cin)
    sp = space("tfnas")
    g = sp.geometry()[1]
    assert (g.h, g.cin, g.cout) == (56, 24, 24)
    assert sp.mid_range(g, "k3_e6") == (96, 192)
    assert sp.candidate_op(g, "k3_e6_se").se == 48 and sp.candidate_op(g, "k3_e3_se").se == 24


def test_spos_channel_multipliers() -> None:
    sp = space("spos")
    assert SCALES == (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
    for g in sp.geometry():
        for cand in sp.candidates:
            assert sp.candidate_op(g, cand).mid == g.cout // 2
            for scale in SCALES:
                assert sp.candidate_op(g, cand, scale).mid == round(g.cout // 2 * scale)
    g = sp.geometry()[0]
    for bad in (0.1, 0.3, 1.8, 0.0, -0.2, 2.0, float("nan"), float("inf")):
        with pytest.raises(SpaceError, match="must be one of 0.2, 0.4"):
            sp.candidate_op(g, "shuffle_k3", bad)
    assert sp.candidate_op(g, "xception").kernel == 3
    assert [sp.candidate_op(g, c).kernel for c in sp.candidates[:3]] == [3, 5, 7]


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("tfnas", "spos")])
def test_widths_rejected_where_the_space_has_none(name: str) -> None:
    sp = space(name)
    arch = sp.sample(1, seed=0)[0]
    toks = arch.encode().split("-")
    toks[1] = toks[1] + "@2"
    with pytest.raises(SpaceError, match="takes no width"):
        sp.parse("-".join(toks))


# -- text form ------------------------------------------------------------------------------


@st.composite
def archs(draw, name: str) -> Arch:
    sp = space(name)
    arch = sp.sample(1, seed=draw(st.integers(0, 2**32 - 1)))[0]
    if sp.width == "none" or not draw(st.booleans()):
        return arch
    widths = []
    for g, cand in zip(sp.geometry(), arch.choices):
        if cand == "skip" or draw(st.booleans()):
            widths.append(None)
        elif sp.width == "mid":
            widths.append(draw(st.integers(*sp.mid_range(g, cand))))
        else:
            widths.append(draw(st.sampled_from(SCALES)))
    return Arch(arch.choices, arch.resolution, tuple(widths) if any(w is not None for w in widths) else None)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_parse_inverts_encode(name: str, data) -> None:
    sp = space(name)
    arch = data.draw(archs(name))
    text = arch.encode()
    assert sp.parse(text) == arch
    assert str(arch) == text
    assert text.startswith("r") == sp.elastic_resolution
    assert len(text.split(":")[-1].split("-")) == sp.num_layers


def test_text_form_examples() -> None:
    tf = space("tfnas")
    text = "k3_e3@40-k5_e6_se-k3_e6@100-skip-skip" + "-k3_e3" * 13
    arch = tf.parse(text)
    assert arch.widths[:3] == (40, None, 100) and arch.encode() == text
    assert tf.layer_ops(arch)[0].mid == 40 and tf.layer_ops(arch)[1].mid == 24 * 6
    sp = space("spos")
    arch = sp.parse("-".join(["shuffle_k3@0.6"] + ["xception"] * 19))
    assert arch.widths[0] == 0.6 and arch.encode().startswith("shuffle_k3@0.6-xception")
    ofa = space("ofa-mbv3")
    arch = ofa.parse("r176:" + "-".join(["k3_e4", "k5_e6", "skip", "skip"] * 5))
    assert arch.resolution == 176 and ofa.input_resolution(arch) == 176
    assert ofa.ops(arch)[0].h == 176


def _some(name: str) -> list[str]:
    return space(name).sample(1, seed=1)[0].encode().split(":")[-1].split("-")


@pytest.mark.parametrize("name", NAMES)
def test_wrong_length_says_expected_count(name: str) -> None:
    sp = space(name)
    toks = _some(name)
    prefix = "r224:" if sp.elastic_resolution else ""
    for text in (prefix + "-".join(toks[:-1]), prefix + "-".join(toks + toks[:1]), prefix):
        with pytest.raises(SpaceError, match=rf"{sp.num_layers} searchable layers, got \d+"):
            sp.parse(text)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_candidate_lists_allowed_ones(name: str) -> None:
    sp = space(name)
    toks = _some(name)
    prefix = "r224:" if sp.elastic_resolution else ""
    for bad in ("k9_e9", "K3_E3", "k3_e3 ", "conv", ""):
        toks2 = [bad] + toks[1:]
        with pytest.raises(SpaceError) as info:
            sp.parse(prefix + "-".join(toks2))
        assert repr(bad) in str(info.value)
        assert "allowed: " + ", ".join(sp.layer_choices(0)) in str(info.value)


@pytest.mark.parametrize("name", ["proxylessnas", "spnas", "tfnas", "ofa-mbv3"])
def test_illegal_skip_is_rejected(name: str) -> None:
    sp = space(name)
    toks = _some(name)
    prefix = "r224:" if sp.elastic_resolution else ""
    toks[0] = "skip"
    with pytest.raises(SpaceError, match="skip is not allowed at layer 0") as info:
        sp.parse(prefix + "-".join(toks))
    assert "allowed: " + ", ".join(sp.layer_choices(0)) in str(info.value)


@pytest.mark.parametrize("name", ["tfnas", "ofa-mbv3"])
def test_skip_followed_by_layer_in_depth_spaces(name: str) -> None:
    sp = space(name)
    g = next(g for g in sp.geometry() if g.position == sp.min_depth and sp.stages[g.stage].layers > g.position + 1)
    choices = [c if c != "skip" else sp.candidates[0] for c in sp.sample(1, seed=2)[0].choices]
    choices[g.index] = "skip"
    prefix = "r224:" if sp.elastic_resolution else ""
    with pytest.raises(SpaceError, match=f"layer {g.index + 1} of {name} follows a skip"):
        sp.parse(prefix + "-".join(choices))
    choices[g.index + 1 : g.index + sp.stages[g.stage].layers - g.position] = ["skip"] * (
        sp.stages[g.stage].layers - g.position - 1
    )
    assert sp.parse(prefix + "-".join(choices)).choices == tuple(choices)


def test_resolution_prefix_errors() -> None:
    ofa = space("ofa-mbv3")
    body = "-".join(["k3_e3"] * 20)
    for res in (124, 130, 228, 0):
        with pytest.raises(SpaceError, match=r"allowed: 128\.\.224 step 4"):
            ofa.parse(f"r{res}:{body}")
    with pytest.raises(SpaceError, match="needs a resolution prefix"):
        ofa.parse(body)
    for prefix in ("x224", "r", "224", "r22.4", "R224", ""):
        with pytest.raises(SpaceError, match="bad resolution prefix"):
            ofa.parse(f"{prefix}:{body}")
    prox = space("proxylessnas")
    with pytest.raises(SpaceError, match="resolution 160 is not allowed in proxylessnas; allowed: 224"):
        prox.parse("r160:" + "-".join(["k3_e3"] * 21))


@pytest.mark.parametrize(
    "text",
    [None, 42, b"k3_e3", "", "   ", "-", "hello world", "r224:r224:k3_e3", "k3_e3@", "k3_e3@abc", "@@", "k3_e3@1@2"],
)
@pytest.mark.parametrize("name", ["proxylessnas", "tfnas", "spos", "ofa-mbv3"])
def test_garbage_raises_space_error(name: str, text) -> None:
    with pytest.raises(SpaceError):
        space(name).parse(text)


def test_width_parse_errors_are_clear() -> None:
    tf = space("tfnas")
    with pytest.raises(SpaceError, match="bad width '' in token 'k3_e3@'"):
        tf.parse("k3_e3@" + "-k3_e3" * 17)
    with pytest.raises(SpaceError, match="bad width '48.5'"):
        tf.parse("k3_e3@48.5" + "-k3_e3" * 17)
    message = r"mid channels 200 of k3_e3 at layer 0 of tfnas must be an integer in \[32, 64\]"
    with pytest.raises(SpaceError, match=message):
        tf.parse("k3_e3@200" + "-k3_e3" * 17)
    with pytest.raises(SpaceError, match="takes no width at layer 3"):
        tf.parse("k3_e3-k3_e3-k3_e3-skip@64" + "-k3_e3" * 14)
    for width in ("+48", " 48", "48 ", "-48", "4_8", "nan", "1e2"):
        with pytest.raises(SpaceError, match="bad width"):
            tf.parse(f"k3_e3@{width}" + "-k3_e3" * 17)
    sp = space("spos")
    with pytest.raises(SpaceError, match="bad width 'nan'"):
        sp.parse("shuffle_k3@nan" + "-xception" * 19)
    with pytest.raises(SpaceError, match="channel multiplier 1.8"):
        sp.parse("shuffle_k3@1.8" + "-xception" * 19)


def test_errors_are_typed() -> None:
    with pytest.raises(ValueError):
        space("spnas").parse("nope")
    with pytest.raises(HwprofError):
        space("spnas").parse("nope")


# -- the real help-fbnet architectures ------------------------------------------------------------

HELP_FBNET = Path(__file__).resolve().parent / "data" / "help-fbnet" / "fbnet_cifar100_latency_first700.csv"


def test_every_help_fbnet_architecture_parses_with_its_indices() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(HELP_FBNET, usecols=["ops", "op_indices"])
    assert len(df) == 700  # the slice in tests/data: arch_id 0-699
    sp = space("fbnet-c100")
    archs = [sp.parse(text) for text in df["ops"]]
    got = np.stack([sp.indices(a) for a in archs])
    want = np.array([[int(i) for i in s.split()] for s in df["op_indices"]])
    np.testing.assert_array_equal(got, want)
    assert all(a.encode() == text for a, text in zip(archs, df["ops"]))
    # the data uses every candidate, skip in stage-first layers included
    assert set(np.unique(want)) == set(range(9))


# -- sampling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_deterministic_legal_and_covers_every_candidate(name: str) -> None:
    sp = space(name)
    archs = sp.sample(400, seed=11)
    assert archs == sp.sample(400, seed=11)
    assert archs[:20] != sp.sample(20, seed=12)
    assert all(isinstance(a, Arch) and len(a.choices) == sp.num_layers for a in archs)
    seen = [set() for _ in range(sp.num_layers)]
    for a in archs:
        sp.validate(a)
        assert sp.parse(a.encode()) == a
        for i, c in enumerate(a.choices):
            seen[i].add(c)
    assert seen == [set(sp.layer_choices(i)) for i in range(sp.num_layers)]
    if sp.elastic_resolution:
        assert {a.resolution for a in archs} == set(sp.resolutions)
    else:
        assert {a.resolution for a in archs} == {None}


def test_depth_spaces_sample_every_depth() -> None:
    for name, depths in (("tfnas", {1, 2, 3, 4}), ("ofa-mbv3", {2, 3, 4})):
        sp = space(name)
        got = set()
        for a in sp.sample(200, seed=5):
            for si, st_ in enumerate(sp.stages):
                layers = [c for g, c in zip(sp.geometry(), a.choices) if g.stage == si]
                if st_.layers == 4:
                    got.add(sum(c != "skip" for c in layers))
        assert got == depths


# -- views: indices, one-hot, choice ops ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_indices_one_hot_and_from_indices(name: str) -> None:
    sp = space(name)
    archs = sp.sample(30, seed=4)
    L, K = sp.num_layers, sp.max_choices
    idx = np.stack([sp.indices(a) for a in archs])
    assert idx.shape == (30, L) and idx.dtype == np.int64
    oh = sp.one_hot(archs)
    assert oh.shape == (30, L * K) and oh.dtype == np.float32
    assert (oh.sum(1) == L).all()
    rows, cols = np.nonzero(oh)
    np.testing.assert_array_equal(cols.reshape(30, L), np.arange(L) * K + idx)  # layer-major
    assert sp.one_hot([]).shape == (0, L * K)
    for a, row in zip(archs, idx):
        assert sp.from_indices(row, a.resolution) == Arch(a.choices, a.resolution)
    assert (sp.mask[np.arange(L), idx]).all()


@pytest.mark.parametrize("bad", [[-1], [9], [1.5], ["x"]])
def test_from_indices_rejects_bad_indices(bad) -> None:
    sp = space("fbnet-c100")
    with pytest.raises(SpaceError, match="candidate index out of range 0..8"):
        sp.from_indices(bad + [0] * 21)


def test_lightnas_one_hot_is_21_by_7_layer_major() -> None:
    sp = space("lightnas")
    arch = sp.parse("-".join(["k3_e3"] * 20 + ["skip"]))
    oh = sp.one_hot([arch])
    assert oh.shape == (1, 147)
    assert np.flatnonzero(oh[0]).tolist() == [layer * 7 for layer in range(20)] + [20 * 7 + 6]


@pytest.mark.parametrize("name", NAMES)
def test_choice_ops_follow_the_mask(name: str) -> None:
    sp = space(name)
    table = sp.choice_ops(batch=4)
    assert len(table) == sp.num_layers and all(len(row) == sp.max_choices for row in table)
    for g, row in zip(sp.geometry(), table):
        for j, op in enumerate(row):
            assert (op is not None) == sp.mask[g.index, j]
            if op is not None:
                assert op == sp.candidate_op(g, sp.candidates[j], batch=4) and op.batch == 4


@pytest.mark.parametrize("name", NAMES)
def test_ops_macs_and_params_are_sums_over_one_walk(name: str) -> None:
    sp = space(name)
    arch = sp.sample(1, seed=9)[0]
    ops = sp.ops(arch)
    assert sp.macs(arch) == sum(op.macs() for op in ops)
    assert sp.params(arch) == sum(op.params() for op in ops)
    assert sp.ops(arch, batch=8) == [op.with_batch(8) for op in ops]
    assert sp.ops(arch.encode()) == ops
    # chained shapes: each op starts where the previous one ended
    for a, b in zip(ops, ops[1:]):
        assert (b.h, b.cin) == (a.out_hw[0], a.cout)


def test_proxylessnas_macs_in_the_range_of_the_papers_models() -> None:
    # ProxylessNAS's models (mobile ≈ 320 M MACs, CPU/GPU ≈ 440–470 M) sit in 200–600 M at 224×224
    sp = space("proxylessnas")
    macs = np.array([sp.macs(a) for a in sp.sample(200, seed=0)]) / 1e6
    assert ((macs > 200) & (macs < 600)).all()
    assert 300 < np.median(macs) < 450
    widest = sp.macs(sp.parse("-".join(["k7_e6"] * 21))) / 1e6
    assert 550 < widest < 650
    assert math.isclose(sp.macs(sp.parse("-".join(["k3_e6"] * 21))) / 1e6, 472.7, abs_tol=0.1)


@pytest.mark.parametrize("name", ["tfnas", "spos"])
def test_sampled_widths_are_legal_seeded_and_leave_the_candidates_alone(name):
    sp = space(name)
    plain, wide = sp.sample(40, seed=3), sp.sample(40, seed=3, widths=True)
    assert [a.choices for a in plain] == [a.choices for a in wide]
    assert [a.encode() for a in wide] == [a.encode() for a in sp.sample(40, seed=3, widths=True)]
    drawn = [w for a in wide for w in (a.widths or ()) if w is not None]
    assert len(drawn) > 40 and len(set(drawn)) > 5
    for a in wide:
        sp.validate(sp.parse(a.encode()))
        for g, c, w in zip(sp.geometry(), a.choices, a.widths or (None,) * sp.num_layers):
            # the default width is written as none: one network, one text
            assert w is None or sp.width_from_ratio(g, c, sp.width_ratio(g, c, w)) == w
    with pytest.raises(SpaceError, match="no elastic width"):
        space("proxylessnas").sample(1, widths=True)
