"""OpSpec: canonical keys, validation, shapes and cost formulas."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprof.errors import HwprofError, OpSpecError
from hwprof.spaces.ops import ACTS, KINDS, OpSpec, decode, encode

ODD_KERNELS = st.sampled_from([1, 3, 5, 7, 9])


@st.composite
def op_specs(draw, kind: str | None = None, max_hw: int = 4096, max_ch: int = 4096) -> OpSpec:
    """Any valid OpSpec: every kind, with the field constraints :class:`OpSpec` enforces."""
    kind = kind or draw(st.sampled_from(KINDS))
    hw = st.integers(1, max_hw)
    ch = st.integers(1, max_ch)
    h, w, batch = draw(hw), draw(hw), draw(st.integers(1, 64))
    act = draw(st.sampled_from(ACTS))
    if kind == "conv":
        g = draw(st.sampled_from([1, 2, 4]))
        cin, cout = g * draw(ch), g * draw(ch)
        return OpSpec(kind, h, w, cin, cout, 0, draw(ODD_KERNELS), draw(st.integers(1, 4)), g, 0, act, batch)
    if kind == "mbconv":
        g = draw(st.sampled_from([1, 2]))
        cin, mid, cout = g * draw(ch), g * draw(ch), g * draw(ch)
        se = draw(st.integers(0, 64))
        return OpSpec(kind, h, w, cin, cout, mid, draw(ODD_KERNELS), draw(st.integers(1, 3)), g, se, act, batch)
    if kind == "skip":
        c = draw(ch)
        return OpSpec(kind, h, w, c, c, batch=batch)
    if kind == "maxpool":
        c = draw(ch)
        return OpSpec(kind, h, w, c, c, 0, draw(ODD_KERNELS), draw(st.integers(1, 3)), batch=batch)
    if kind == "pool":
        c = draw(ch)
        return OpSpec(kind, h, w, c, c, batch=batch)
    if kind == "fc":
        return OpSpec(kind, 1, 1, draw(ch), draw(ch), act=act, batch=batch)
    # shuffle / xception
    stride = draw(st.integers(1, 2))
    if stride == 1:
        cin = cout = 2 * draw(st.integers(1, max_ch // 2))
    else:
        cin = draw(ch)
        cout = 2 * draw(st.integers(cin // 2 + 1, cin + max_ch // 2))
    return OpSpec(kind, h, w, cin, cout, draw(ch), draw(ODD_KERNELS), stride, 1, 0, act, batch)


# -- canonical keys ---------------------------------------------------------------


@given(op_specs())
def test_decode_inverts_encode(op: OpSpec) -> None:
    key = encode(op)
    assert decode(key) == op
    assert op.encode() == key
    assert encode(decode(key)) == key  # the key is canonical: one op, one key


def test_key_grammar_example() -> None:
    op = OpSpec("mbconv", 56, 56, 24, 24, 144, 5, 1, 1, 0, "relu6", 1)
    assert op.encode() == "mbconv:h56:w56:ci24:co24:m144:k5:s1:g1:se0:relu6:b1"
    assert decode(" mbconv:h56:w56:ci24:co24:m144:k5:s1:g1:se0:relu6:b1\n") == op


@given(op_specs(), op_specs())
def test_distinct_ops_have_distinct_keys(a: OpSpec, b: OpSpec) -> None:
    assert (a == b) == (a.encode() == b.encode())


GOOD = "mbconv:h56:w56:ci24:co24:m144:k5:s1:g1:se0:relu6:b1"


@pytest.mark.parametrize(
    ("key", "needles"),
    [
        ("mbconv:h56:w56:ci24", ["4 fields", "expected 12"]),
        (GOOD + ":b1", ["13 fields", "expected 12"]),
        ("", ["1 fields", "expected 12"]),
        (GOOD.replace("mbconv", "dwconv"), ["'dwconv'", *KINDS]),
        (GOOD.replace("relu6", "gelu"), ["'gelu'", *ACTS]),
        (GOOD.replace("h56", "x56"), ["'x56'", "h<integer>"]),
        (GOOD.replace("ci24", "ci"), ["'ci'", "ci<integer>"]),
        (GOOD.replace("m144", "m-144"), ["'m-144'", "m<integer>"]),
        (GOOD.replace("k5", "k+5"), ["'k+5'", "k<integer>"]),
        (GOOD.replace("s1", "s1.5"), ["'s1.5'", "s<integer>"]),
        (GOOD.replace("b1", "b٣"), ["'b٣'", "b<integer>"]),
        (GOOD.replace("se0", "se00"), ["'se00'", "leading zeros"]),
        (GOOD.replace("co24", "co024"), ["'co024'", "leading zeros"]),
        (GOOD.replace("h56:w56", "w56:h56"), ["'w56'", "h<integer>"]),
    ],
)
def test_malformed_keys_name_the_token_and_allowed_values(key: str, needles: list[str]) -> None:
    with pytest.raises(OpSpecError) as info:
        decode(key)
    message = str(info.value)
    for needle in needles:
        assert needle in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, HwprofError)


@pytest.mark.parametrize("key", [None, 3, b"conv:h1", ["conv"]])
def test_non_string_keys_are_rejected(key) -> None:
    with pytest.raises(OpSpecError, match="string"):
        decode(key)


@pytest.mark.parametrize(
    ("key", "field"),
    [
        (GOOD.replace("h56", "h0"), "h must be positive"),
        (GOOD.replace("b1", "b0"), "batch must be positive"),
        (GOOD.replace("m144", "m0"), "mid > 0"),
        (GOOD.replace("k5", "k4"), "odd kernel"),
    ],
)
def test_keys_of_invalid_ops_are_rejected(key: str, field: str) -> None:
    with pytest.raises(OpSpecError, match=field):
        decode(key)


# -- field validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(kind="relu"), "unknown op kind 'relu'"),
        (dict(act="gelu"), "unknown activation 'gelu'"),
        (dict(h=-1), "h must be a non-negative integer"),
        (dict(cin=2.0), "cin must be a non-negative integer"),
        (dict(stride=True), "stride must be a non-negative integer"),
        (dict(groups=0), "groups must be positive"),
        (dict(kind="skip", cout=32), "cin == cout"),
        (dict(kind="skip", stride=2), "stride 1"),
        (dict(kind="conv", mid=8), "does not use mid"),
        (dict(kind="conv", se=8), "does not use se"),
        (dict(kind="pool", kernel=3), "does not use kernel"),
        (dict(kind="pool", act="relu"), "does not use act"),
        (dict(kind="pool", cout=32), "cout == cin"),
        (dict(kind="maxpool", cout=32), "cout == cin"),
        (dict(kind="maxpool", kernel=2), "odd kernel"),
        (dict(kind="fc"), "1×1 map"),
        (dict(kind="conv", kernel=2), "odd kernel"),
        (dict(kind="conv", groups=3), "cin divisible by 3"),
        (dict(kind="mbconv", mid=30, groups=4), "mid divisible by 4"),
        (dict(kind="shuffle", mid=8, groups=2), "does not use groups"),
        (dict(kind="shuffle", mid=8, cin=15, cout=15), "even"),
        (dict(kind="shuffle", mid=8, cout=32), "cin == cout"),
        (dict(kind="xception", mid=8, stride=2, cout=16), "cout > cin"),
        (dict(kind="xception", mid=8, stride=2, cout=33), "even"),
    ],
)
def test_invalid_fields_raise_opspec_error(kwargs: dict, needle: str) -> None:
    base = dict(kind="mbconv", h=8, w=8, cin=16, cout=16, mid=48, kernel=3, stride=1, groups=1, se=0, act="relu")
    if kwargs.get("kind") in ("conv", "skip", "pool", "maxpool", "fc"):
        base.update(mid=0)
    if kwargs.get("kind") in ("skip", "pool", "maxpool"):
        base.update(act="none")
    if kwargs.get("kind") in ("skip", "pool", "fc"):
        base.update(kernel=1)
    with pytest.raises(OpSpecError, match=needle):
        OpSpec(**{**base, **kwargs})


def test_opspec_is_frozen_and_ordered() -> None:
    op = OpSpec("conv", 8, 8, 3, 16, kernel=3, stride=2, act="relu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.h = 4  # type: ignore[misc]
    assert sorted([op.with_batch(4), op]) == [op, op.with_batch(4)]


# -- shape ---------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "stride", "out"), [(224, 2, 112), (7, 2, 4), (112, 1, 112), (3, 2, 2), (1, 2, 1)])
def test_out_hw_is_ceil_of_h_over_stride(h: int, stride: int, out: int) -> None:
    op = OpSpec("conv", h, h + 1, 8, 8, 0, 3, stride)
    assert op.out_hw == (out, -(-(h + 1) // stride))


def test_pool_and_fc_output_one_by_one() -> None:
    assert OpSpec("pool", 7, 7, 1280, 1280).out_hw == (1, 1)
    assert OpSpec("fc", 1, 1, 1280, 1000).out_hw == (1, 1)


def test_residual_and_expansion_flags() -> None:
    mb = OpSpec("mbconv", 14, 14, 80, 80, 240, 3, 1)
    assert mb.residual and mb.has_expansion
    assert not dataclasses.replace(mb, stride=2).residual
    assert not dataclasses.replace(mb, cout=96).residual
    e1 = OpSpec("mbconv", 112, 112, 16, 16, 16, 3, 1)
    assert not e1.has_expansion
    assert dataclasses.replace(e1, groups=2).has_expansion  # FBNet k3_e1_g2 keeps its grouped 1×1 expansion
    assert not OpSpec("conv", 8, 8, 8, 8).residual


# -- cost -------------------------------------------------------------------------------


@given(op_specs(max_hw=64, max_ch=256), st.integers(2, 16))
def test_cost_scales_with_batch_only(op: OpSpec, batch: int) -> None:
    one, many = op.with_batch(1), op.with_batch(batch)
    assert many.macs() == batch * one.macs()
    assert many.params() == one.params()
    assert one.macs() >= 0 and one.params() >= 0


def test_macs_by_hand() -> None:
    # 3×3 stride-2 stem: 112·112 outputs × 32 channels × 3 inputs × 9
    assert OpSpec("conv", 224, 224, 3, 32, 0, 3, 2, act="relu6").macs() == 112 * 112 * 32 * 3 * 9
    # MBConv 24→24 e6 k5 at 56: expand 56²·24·144 + depthwise 56²·144·25 + project 56²·144·24
    mb = OpSpec("mbconv", 56, 56, 24, 24, 144, 5, 1, act="relu6")
    assert mb.macs() == 56 * 56 * (24 * 144 + 144 * 25 + 144 * 24)
    assert mb.params() == 24 * 144 + 144 * 25 + 144 * 24
    assert OpSpec("fc", 1, 1, 1280, 1000, batch=2).macs() == 2 * 1280 * 1000
    assert OpSpec("fc", 1, 1, 1280, 1000).params() == 1280 * 1000 + 1000
    assert OpSpec("skip", 56, 56, 24, 24).macs() == 0 == OpSpec("skip", 56, 56, 24, 24).params()
    # grouped e1 (FBNet k3_e1_g2): both 1×1 convs have half the weights
    g2 = OpSpec("mbconv", 32, 32, 16, 16, 16, 3, 1, 2, act="relu")
    assert g2.macs() == 32 * 32 * (16 * 16 // 2 + 16 * 9 + 16 * 16 // 2)
