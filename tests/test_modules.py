"""Torch modules: output shapes, MACs and weights agree with the OpSpec they were built from."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from torch import nn  # noqa: E402

from hwprof.spaces import modules as hm  # noqa: E402
from hwprof.spaces.ops import ACTS, OpSpec  # noqa: E402
from hwprof.spaces import SPACES, space  # noqa: E402
from test_ops import op_specs  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def expected_shape(op: OpSpec) -> tuple[int, ...]:
    if op.kind == "fc":
        return (op.batch, op.cout)
    return (op.batch, op.cout, *op.out_hw)


def hook_macs(op: OpSpec) -> int:
    """``op.macs()`` less the terms that are not conv/linear MACs (documented in OpSpec.macs)."""
    if op.kind == "pool":
        return op.macs() - op.batch * op.h * op.w * op.cin
    if op.kind == "maxpool":
        ho, wo = op.out_hw
        return op.macs() - op.batch * ho * wo * op.cin * op.kernel**2
    return op.macs()


def weight_count(module: nn.Module) -> int:
    """Weights and biases of every Conv2d and Linear (BatchNorm excluded, as in OpSpec.params)."""
    return sum(p.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters())


OPS = [
    OpSpec("conv", 17, 17, 3, 16, 0, 3, 2, act="relu6", batch=2),
    OpSpec("conv", 9, 9, 8, 12, 0, 1, 1, 2, act="swish"),
    OpSpec("conv", 10, 10, 8, 16, 0, 5, 3, 4, act="hswish"),
    OpSpec("mbconv", 14, 14, 16, 16, 96, 5, 1, act="relu6"),  # residual
    OpSpec("mbconv", 15, 15, 16, 24, 48, 7, 2, act="relu"),
    OpSpec("mbconv", 16, 16, 16, 16, 16, 3, 1, act="relu6"),  # e1: no expansion
    OpSpec("mbconv", 16, 16, 16, 24, 16, 5, 1, 2, act="relu"),  # FBNet k5_e1_g2
    OpSpec("mbconv", 16, 16, 16, 16, 48, 3, 2, 2, act="relu"),  # grouped e3
    OpSpec("mbconv", 14, 14, 24, 24, 72, 3, 1, 1, 24, "swish", 2),  # TF-NAS _se
    OpSpec("mbconv", 7, 7, 40, 48, 240, 5, 1, 1, 64, "hswish"),  # OFA SE, hard gate
    OpSpec("skip", 8, 8, 24, 24, batch=3),
    OpSpec("maxpool", 15, 15, 16, 16, 0, 3, 2),
    OpSpec("pool", 7, 7, 32, 32, batch=2),
    OpSpec("fc", 1, 1, 32, 10, act="relu6", batch=2),
    OpSpec("shuffle", 14, 14, 32, 32, 16, 3, 1, act="relu"),
    OpSpec("shuffle", 15, 15, 16, 64, 32, 7, 2, act="relu"),
    OpSpec("xception", 14, 14, 32, 32, 16, 3, 1, act="relu"),
    OpSpec("xception", 14, 14, 32, 80, 40, 3, 2, act="relu"),
    OpSpec("xception", 9, 9, 16, 32, 8, 5, 2, act="relu"),  # kernel 5: every depthwise uses it
]


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.encode())
def test_module_matches_opspec(op: OpSpec, count_macs) -> None:
    module = hm.build_op(op)
    x = torch.randn(hm.input_shape(op))
    macs, y = count_macs(module, x)
    assert tuple(y.shape) == expected_shape(op)
    assert macs == hook_macs(op)
    assert weight_count(module) == op.params()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=op_specs(max_hw=12, max_ch=24))
def test_any_valid_op_builds_and_matches(op: OpSpec, count_macs) -> None:
    op = op.with_batch(min(op.batch, 2))
    module = hm.build_op(op)
    macs, y = count_macs(module, torch.randn(hm.input_shape(op)))
    assert tuple(y.shape) == expected_shape(op)
    assert macs == hook_macs(op)
    assert weight_count(module) == op.params()


def test_every_kind_is_covered() -> None:
    from hwprof.spaces.ops import KINDS

    assert {op.kind for op in OPS} == set(KINDS)


# -- structure -------------------------------------------------------------------------


def forward_order(module: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    seen: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(m)) for m in module.modules()]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("cand", ["k3_e1_g2", "k5_e1_g2"])
def test_fbnet_g2_groups_both_pointwise_convs_and_shuffles_after_expansion(cand: str) -> None:
    sp = space("fbnet-c100")
    g = sp.geometry()[6]  # 32→32 at 16×16, stride 1
    op = sp.candidate_op(g, cand)
    assert (op.groups, op.mid, op.kernel) == (2, 32, int(cand[1]))
    block = hm.build_op(op)
    assert isinstance(block, hm.MBConv)
    assert block.expand is not None and block.expand.conv.groups == 2 and block.expand.conv.kernel_size == (1, 1)
    assert block.project.conv.groups == 2
    assert isinstance(block.shuffle, hm.ChannelShuffle) and block.shuffle.groups == 2
    parts = (block.expand, block.shuffle, block.depthwise)
    order = [m for m in forward_order(block, torch.randn(1, 32, 16, 16)) if m in parts]
    assert order == [block.expand, block.shuffle, block.depthwise]
    plain = hm.build_op(sp.candidate_op(g, cand.removesuffix("_g2")))
    assert plain.expand is None and plain.shuffle is None and plain.project.conv.groups == 1


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert hm.ChannelShuffle(2)(x).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert hm.ChannelShuffle(4)(x).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_mbconv_residual_adds_input_only_when_shapes_match() -> None:
    for op, residual in [(OPS[3], True), (OPS[4], False)]:
        block = hm.build_op(op).eval()
        nn.init.zeros_(block.project.bn.weight)  # the branch now outputs 0
        x = torch.randn(hm.input_shape(op))
        with torch.no_grad():
            y = block(x)
        assert block.residual is residual
        assert torch.equal(y, x) if residual else not y.any()


def test_shuffle_unit_stride1_passes_first_half_through() -> None:
    op = OPS[14]
    x = torch.randn(hm.input_shape(op))
    with torch.no_grad():
        y = hm.build_op(op).eval()(x)
    assert torch.equal(y[:, 0::2], x[:, : op.cin // 2])


def test_squeeze_excite_gate_follows_activation() -> None:
    assert isinstance(hm.build_op(OPS[8]).se.gate, nn.Sigmoid)
    assert isinstance(hm.build_op(OPS[9]).se.gate, nn.Hardsigmoid)
    assert hm.build_op(OPS[3]).se is None


def test_activations() -> None:
    kinds = {act: type(hm.make_act(act)) for act in ACTS}
    assert kinds == {
        "none": nn.Identity,
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "hswish": nn.Hardswish,
        "swish": nn.SiLU,
    }


def test_build_network_is_eval_mode_sequence() -> None:
    ops = [OPS[0], OpSpec("pool", 9, 9, 16, 16, batch=2), OpSpec("fc", 1, 1, 16, 5, batch=2)]
    net = hm.build_network(ops)
    assert isinstance(net, nn.Sequential) and len(net) == 3 and not net.training
    assert net(torch.randn(2, 3, 17, 17)).shape == (2, 5)


# -- whole spaces ------------------------------------------------------------------------


def _arch(name: str):
    sp = space(name)
    arch = sp.sample(1, seed=7)[0]
    if sp.elastic_resolution:  # smallest legal resolution keeps the forward cheap
        arch = sp.parse(f"r{min(sp.resolutions)}:" + arch.encode().split(":", 1)[1])
    return sp, arch


@pytest.mark.parametrize("name", sorted(SPACES))
def test_space_network_forward_and_macs(name: str, count_macs) -> None:
    sp, arch = _arch(name)
    res = sp.input_resolution(arch)
    ops = sp.ops(arch)
    x = torch.randn(1, 3, res, res)
    # op by op: every module's output is what its OpSpec says, and feeds the next op
    y = x
    with torch.no_grad():
        for op in ops:
            if op.kind == "fc":  # Linear flattens: [b, c] from a previous fc is as good as [b, c, 1, 1]
                y = y.reshape(hm.input_shape(op))
            assert tuple(y.shape) == hm.input_shape(op), op.encode()
            y = hm.build_op(op).eval()(y)
            assert tuple(y.shape) == expected_shape(op), op.encode()
    classes = ops[-1].cout
    assert classes == (100 if name == "fbnet-c100" else 1000)
    # the whole network: [1, 3, R, R] → [1, classes], and MACs counted from torch
    macs, logits = count_macs(sp.build(arch), x)
    assert logits.shape == (1, classes)
    assert torch.isfinite(logits).all()
    assert macs == sum(hook_macs(op) for op in ops)
    assert sp.macs(arch) == sum(op.macs() for op in ops)
    assert weight_count(sp.build(arch)) == sp.params(arch)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tfnas", "k3_e3@40-k5_e6_se@150-k3_e6@100-skip-skip-k5_e3_se@99-k3_e3-skip-skip-k3_e6@600-skip-skip-skip"
                  "-k5_e3@250-k3_e6_se-skip-skip-k5_e6@1536"),
        ("spos", "-".join(f"shuffle_k{k}@{s}" for k, s in zip([3, 5, 7, 3] * 5, [0.2, 0.4, 1.6, 1.0, 0.6] * 4))),
    ],
)
def test_elastic_width_networks(name: str, text: str, count_macs) -> None:
    sp = space(name)
    arch = sp.parse(text)
    assert arch.widths is not None
    macs, logits = count_macs(sp.build(arch), torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 1000)
    assert macs == sum(hook_macs(op) for op in sp.ops(arch))
