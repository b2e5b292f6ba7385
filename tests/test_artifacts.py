"""ONNX and TFLite artifacts compute the torch module they were exported from.

Every op kind and whole architectures of five spaces are exported, run in
onnxruntime and in LiteRT (the real runtimes, one thread) and compared with
torch on random input. BatchNorm running statistics and affine parameters are
set to non-trivial values first, so that folding BN into the TFLite weights is
really exercised. The TFLite operator lists are checked against what the TF
Lite converter emits (activations fused into convolutions, explicit PAD where
TF's SAME padding would differ from torch).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwprof.artifacts.export import FORMATS, export_arch, export_module, export_op
from hwprof.errors import ConfigError
from hwprof.spaces.modules import Linear, build_op, input_shape
from hwprof.spaces.ops import OpSpec
from hwprof.spaces import space

litert = pytest.importorskip("ai_edge_litert.interpreter")
ort = pytest.importorskip("onnxruntime")

RTOL = 1e-4  # of the output's largest magnitude; float32 with reordered sums lands near 1e-6


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- helpers ------------------------------------------------------------------------
def calibrate(module: nn.Module, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """Give every BatchNorm realistic, non-trivial statistics and affine parameters.

    Running stats come from one train-mode pass on random data (so activations
    keep unit scale through deep networks instead of fading to the head's
    bias), then are perturbed, as are gamma and beta; the module ends in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = 1.0
    module.train()
    with torch.no_grad():
        module(torch.randn((4,) + tuple(shape[1:]), generator=gen))
        for bn in bns:
            c = bn.num_features
            bn.momentum = 0.1
            bn.running_mean += 0.1 * torch.randn(c, generator=gen)
            bn.running_var *= torch.empty(c).uniform_(0.8, 1.25, generator=gen)
            bn.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(c, generator=gen))
    return module.eval()


def run_tflite(path: Path, x: torch.Tensor) -> tuple[np.ndarray, list[str]]:
    """Run a .tflite file on NCHW ``x`` (fed NHWC); output back in NCHW, plus its op names.

    The op names are the model's operators; XNNPACK's ``DELEGATE`` nodes are dropped.
    """
    interp = litert.Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["name"] == "input"
    assert tuple(inp["shape"]) == (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    interp.set_tensor(inp["index"], np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()))
    interp.invoke()
    y = interp.get_tensor(out["index"])
    ops = [d["op_name"] for d in interp._get_ops_details() if d["op_name"] != "DELEGATE"]
    return (y.transpose(0, 3, 1, 2) if y.ndim == 4 else y), ops


def fully_delegated(path: Path) -> bool:
    """Whether XNNPACK (LiteRT's default CPU delegate) takes the whole graph as one partition."""
    interp = litert.Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    nodes = [d for d in interp._get_ops_details() if d["op_name"] == "DELEGATE"]
    graph_in = {d["index"] for d in interp.get_input_details()}
    graph_out = {d["index"] for d in interp.get_output_details()}
    return len(nodes) == 1 and graph_in <= set(nodes[0]["inputs"]) and graph_out == set(nodes[0]["outputs"])


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.numpy()})[0]


def torch_out(module: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return module(x).numpy()


def assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    assert out.shape == ref.shape
    scale = float(np.abs(ref).max())
    err = float(np.abs(out - ref).max())
    assert err <= RTOL * scale + 1e-6, f"max abs error {err:.3g} vs output scale {scale:.3g}"


# -- ops ------------------------------------------------------------------------------
def mb(h, cin, cout, mid, k, s, act="relu6", se=0, g=1):
    return OpSpec("mbconv", h, h, cin, cout, mid, k, s, g, se, act)


CONV_SEQ = ["SPLIT", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "CONCATENATION"]
SHUFFLE = ["RESHAPE", "TRANSPOSE", "RESHAPE"]
S2_SHUFFLE = ["PAD", "DEPTHWISE_CONV_2D", "CONV_2D", "CONV_2D", "PAD", "DEPTHWISE_CONV_2D", "CONV_2D", "CONCATENATION"]
XC_S1 = ["SPLIT"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 3 + ["CONCATENATION"]
XC_S2 = ["PAD", "DEPTHWISE_CONV_2D", "CONV_2D", "PAD"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 3 + ["CONCATENATION"]
DW_PROJECT_ADD = ["DEPTHWISE_CONV_2D", "CONV_2D", "ADD"]
SE_SIGMOID = ["MEAN", "CONV_2D", "CONV_2D", "LOGISTIC", "MUL"]
SE_HSIGMOID = ["MEAN", "CONV_2D", "CONV_2D", "ADD", "MUL", "MUL"]

# (id, op, the TFLite operators the converter would emit)
OP_CASES = [
    ("stem_k3_s2_even", OpSpec("conv", 32, 32, 3, 16, kernel=3, stride=2, act="relu6"), ["PAD", "CONV_2D"]),
    ("stem_k3_s2_odd", OpSpec("conv", 33, 33, 3, 16, kernel=3, stride=2, act="relu"), ["CONV_2D"]),
    ("conv_k3_s1_relu6", OpSpec("conv", 16, 16, 8, 16, kernel=3, act="relu6"), ["CONV_2D"]),
    (
        "conv_k3_hswish",
        OpSpec("conv", 16, 16, 3, 16, kernel=3, stride=2, act="hswish"),
        ["PAD", "CONV_2D", "HARD_SWISH"],
    ),
    ("conv_1x1_s2", OpSpec("conv", 16, 16, 16, 24, kernel=1, stride=2, act="relu6"), ["CONV_2D"]),
    ("conv_grouped", OpSpec("conv", 16, 16, 16, 32, kernel=1, groups=2, act="relu"), ["CONV_2D"]),
    ("conv_grouped_k3", OpSpec("conv", 8, 8, 16, 32, kernel=3, groups=4), ["CONV_2D"]),
    ("mb_e1_res", mb(16, 16, 16, 16, 3, 1), ["DEPTHWISE_CONV_2D", "CONV_2D", "ADD"]),
    ("mb_e1", mb(16, 16, 24, 16, 3, 1), ["DEPTHWISE_CONV_2D", "CONV_2D"]),
    ("mb_e3_k5_s2", mb(16, 16, 24, 48, 5, 2), ["CONV_2D", "PAD", "DEPTHWISE_CONV_2D", "CONV_2D"]),
    ("mb_e3_k3_s2_odd", mb(15, 16, 24, 48, 3, 2), ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]),
    ("mb_e6_k7_res", mb(14, 24, 24, 144, 7, 1), ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD"]),
    ("mb_e6_k7_s2", mb(14, 24, 40, 144, 7, 2), ["CONV_2D", "PAD", "DEPTHWISE_CONV_2D", "CONV_2D"]),
    (
        "mb_e3_se_relu",
        mb(14, 24, 24, 72, 5, 1, "relu", se=24),
        ["CONV_2D", "DEPTHWISE_CONV_2D"] + SE_SIGMOID + ["CONV_2D", "ADD"],
    ),
    (
        "mb_e4_se_hswish",
        mb(14, 24, 24, 96, 3, 1, "hswish", se=24),
        ["CONV_2D", "HARD_SWISH", "DEPTHWISE_CONV_2D", "HARD_SWISH"] + SE_HSIGMOID + ["CONV_2D", "ADD"],
    ),
    (
        "mb_e6_se_swish",
        mb(14, 16, 24, 96, 5, 2, "swish", se=32),
        ["CONV_2D", "LOGISTIC", "MUL", "PAD", "DEPTHWISE_CONV_2D", "LOGISTIC", "MUL"] + SE_SIGMOID + ["CONV_2D"],
    ),
    (
        "mb_e3_hswish",
        mb(14, 24, 40, 72, 3, 1, "hswish"),
        ["CONV_2D", "HARD_SWISH", "DEPTHWISE_CONV_2D", "HARD_SWISH", "CONV_2D"],
    ),
    # FBNet _g2: grouped 1x1 convs (also when e = 1), channel shuffle after the expansion
    ("mb_e1_g2", mb(16, 24, 24, 24, 5, 1, g=2), ["CONV_2D"] + SHUFFLE + DW_PROJECT_ADD),
    ("mb_e3_g2", mb(16, 24, 24, 72, 3, 1, "relu", g=2), ["CONV_2D"] + SHUFFLE + DW_PROJECT_ADD),
    ("mb_e6_g2_s2", mb(16, 24, 32, 144, 5, 2, g=2), ["CONV_2D"] + SHUFFLE + ["PAD", "DEPTHWISE_CONV_2D", "CONV_2D"]),
    *[
        (f"shuffle_k{k}_s1", OpSpec("shuffle", 14, 14, 32, 32, 16, k, 1, act="relu"), CONV_SEQ + SHUFFLE)
        for k in (3, 5, 7)
    ],
    *[
        (f"shuffle_k{k}_s2", OpSpec("shuffle", 14, 14, 16, 64, 32, k, 2, act="relu"), S2_SHUFFLE + SHUFFLE)
        for k in (3, 5, 7)
    ],
    ("xception_s1", OpSpec("xception", 14, 14, 32, 32, 16, 3, 1, act="relu"), XC_S1 + SHUFFLE),
    ("xception_s2", OpSpec("xception", 14, 14, 16, 64, 32, 3, 2, act="relu"), XC_S2 + SHUFFLE),
    ("skip", OpSpec("skip", 8, 8, 16, 16), []),
    ("maxpool_even", OpSpec("maxpool", 16, 16, 16, 16, kernel=3, stride=2), ["PADV2", "MAX_POOL_2D"]),
    ("maxpool_odd", OpSpec("maxpool", 15, 15, 16, 16, kernel=3, stride=2), ["MAX_POOL_2D"]),
    ("pool", OpSpec("pool", 7, 7, 64, 64), ["MEAN"]),
    ("fc", OpSpec("fc", 1, 1, 64, 10), ["RESHAPE", "FULLY_CONNECTED"]),
    ("fc_relu6", OpSpec("fc", 1, 1, 64, 10, act="relu6"), ["RESHAPE", "FULLY_CONNECTED"]),
    ("fc_swish", OpSpec("fc", 1, 1, 64, 10, act="swish"), ["RESHAPE", "FULLY_CONNECTED", "LOGISTIC", "MUL"]),
    ("fc_hswish", OpSpec("fc", 1, 1, 64, 10, act="hswish"), ["RESHAPE", "FULLY_CONNECTED", "HARD_SWISH"]),
    ("mb_batch3", dataclasses.replace(mb(14, 24, 24, 72, 5, 1, "relu", se=24), batch=3), None),
    ("shuffle_batch2", OpSpec("shuffle", 14, 14, 32, 32, 16, 3, 1, act="relu", batch=2), CONV_SEQ + SHUFFLE),
]


@pytest.mark.parametrize("op, expected_ops", [c[1:] for c in OP_CASES], ids=[c[0] for c in OP_CASES])
def test_op_tflite_matches_torch(tmp_path, op, expected_ops):
    module = calibrate(build_op(op), input_shape(op))
    x = torch.randn(input_shape(op), generator=torch.Generator().manual_seed(1))
    path = export_module(module, input_shape(op), "tflite", tmp_path / "op.tflite")
    out, ops = run_tflite(path, x)
    assert_close(out, torch_out(module, x))
    if expected_ops is not None:
        assert ops == expected_ops
    if ops and "PADV2" not in ops:  # PADV2 (-inf padding) is the one op XNNPACK leaves to LiteRT
        assert fully_delegated(path)


@pytest.mark.parametrize("op", [c[1] for c in OP_CASES], ids=[c[0] for c in OP_CASES])
def test_op_onnx_matches_torch(tmp_path, op):
    module = calibrate(build_op(op), input_shape(op))
    x = torch.randn(input_shape(op), generator=torch.Generator().manual_seed(1))
    path = export_module(module, input_shape(op), "onnx", tmp_path / "op.onnx")
    assert_close(run_onnx(path, x), torch_out(module, x))


def test_maxpool_pads_with_minus_infinity(tmp_path):
    # all-negative input: a zero PAD would put 0 into every border window's maximum
    op = OpSpec("maxpool", 16, 16, 8, 8, kernel=3, stride=2)
    x = -1.0 - torch.rand(input_shape(op), generator=torch.Generator().manual_seed(0))
    for fmt in ("onnx", "tflite"):
        path = export_op(op, fmt, tmp_path / f"pool.{fmt}")
        out = run_tflite(path, x)[0] if fmt == "tflite" else run_onnx(path, x)
        np.testing.assert_array_equal(out, torch_out(build_op(op), x))


def test_maxpool_after_relu_pads_with_zeros(tmp_path):
    # SPOS stem: conv-BN-ReLU then 3x3/2 max pool on an even map; the ReLU makes a zero PAD exact
    module = nn.Sequential(
        build_op(OpSpec("conv", 32, 32, 3, 16, kernel=3, stride=2, act="relu")),
        build_op(OpSpec("maxpool", 16, 16, 16, 16, kernel=3, stride=2)),
    )
    module = calibrate(module, (1, 3, 32, 32))
    x = torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    path = export_module(module, (1, 3, 32, 32), "tflite", tmp_path / "stem.tflite")
    out, ops = run_tflite(path, x)
    assert ops == ["PAD", "CONV_2D", "PAD", "MAX_POOL_2D"]
    assert_close(out, torch_out(module, x))
    assert fully_delegated(path)


def test_tflite_file_layout(tmp_path):
    """Read the file back with the official schema bindings: version, buffers, layouts, fused activations."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    op = mb(16, 16, 24, 48, 5, 1, "relu6")
    path = export_op(op, "tflite", tmp_path / "mb.tflite")
    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    assert model.Version() == 3
    assert op.encode() in model.Description().decode()
    assert model.Buffers(0).DataLength() == 0
    graph = model.Subgraphs(0)
    tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    inp = tensors[graph.Inputs(0)]
    assert inp.Name() == b"input" and list(inp.ShapeAsNumpy()) == [1, 16, 16, 16]
    assert list(tensors[graph.Outputs(0)].ShapeAsNumpy()) == [1, 16, 16, 24]
    codes = [model.OperatorCodes(i).BuiltinCode() for i in range(model.OperatorCodesLength())]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    assert [names[codes[o.OpcodeIndex()]] for o in ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    filters = [list(tensors[o.Inputs(1)].ShapeAsNumpy()) for o in ops]
    assert filters == [[48, 1, 1, 16], [1, 5, 5, 48], [24, 1, 1, 48]]
    expand, depthwise, project = ops
    relu6 = schema.ActivationFunctionType.RELU6

    def options(o, cls):
        table = cls()
        table.Init(o.BuiltinOptions().Bytes, o.BuiltinOptions().Pos)
        return table

    assert options(expand, schema.Conv2DOptions).FusedActivationFunction() == relu6
    dw = options(depthwise, schema.DepthwiseConv2DOptions)
    assert (dw.FusedActivationFunction(), dw.Padding(), dw.DepthMultiplier()) == (relu6, schema.Padding.SAME, 1)
    assert options(project, schema.Conv2DOptions).FusedActivationFunction() == schema.ActivationFunctionType.NONE
    for o in ops:  # every constant has its own non-empty buffer
        for i in (1, 2):
            assert model.Buffers(tensors[o.Inputs(i)].Buffer()).DataLength() > 0
    assert {model.OperatorCodes(i).Version() for i in range(model.OperatorCodesLength())} == {1}


def test_grouped_conv_is_conv2d_version_6(tmp_path):
    # the converter's operator version for grouped CONV_2D; runtimes without it refuse the file
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    path = export_op(OpSpec("conv", 8, 8, 16, 32, kernel=1, groups=2), "tflite", tmp_path / "g.tflite")
    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    code = model.OperatorCodes(0)
    assert (code.BuiltinCode(), code.Version()) == (schema.BuiltinOperator.CONV_2D, 6)
    filt = model.Subgraphs(0).Tensors(model.Subgraphs(0).Operators(0).Inputs(1))
    assert list(filt.ShapeAsNumpy()) == [32, 1, 1, 8]


def test_onnx_graph_interface(tmp_path):
    onnx = pytest.importorskip("onnx")
    op = mb(14, 24, 24, 72, 5, 1, "hswish", se=24, g=1)
    model = onnx.load(str(export_op(op, "onnx", tmp_path / "mb.onnx")))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,) = model.graph.input
    assert inp.name == "input" and model.graph.output[0].name == "output"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 24, 14, 14]  # static NCHW
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}  # folded in eval mode


# -- whole architectures --------------------------------------------------------------------
# lightnas's head (FC, ReLU6, FC) is covered at op level by test_fc_after_fc
ARCH_SPACES = ["proxylessnas", "fbnet-c100", "spos", "tfnas", "ofa-mbv3", "lightnas"]


def _arch(name: str, resolution: int = 128):
    sp = space(name)
    arch = sp.sample(1, seed=3)[0]
    if name == "ofa-mbv3":  # the smallest resolution keeps the test fast
        arch = dataclasses.replace(arch, resolution=resolution)
    return sp, arch


@pytest.mark.parametrize("name", ARCH_SPACES)
def test_arch_matches_torch(tmp_path, name):
    sp, arch = _arch(name)
    res = sp.input_resolution(arch)
    shape = (1, 3, res, res)
    torch.manual_seed(0)
    module = calibrate(sp.build(arch), shape)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    ref = torch_out(module, x)
    other = torch_out(module, torch.randn(shape, generator=torch.Generator().manual_seed(2)))
    assert np.abs(ref - other).max() > 0.01 * np.abs(ref).max()  # the output really depends on the input
    path = export_module(module, shape, "tflite", tmp_path / "a.tflite")
    out, ops = run_tflite(path, x)
    assert_close(out, ref)
    assert "RELU6" not in ops and "RELU" not in ops  # always fused into the producing conv / FC
    assert fully_delegated(path)  # one XNNPACK partition, as for a converter-made model
    assert_close(run_onnx(export_module(module, shape, "onnx", tmp_path / "a.onnx"), x), ref)


@pytest.mark.parametrize("name, fmt", [("ofa-mbv3", "tflite"), ("fbnet-c100", "onnx")])
def test_export_arch_uses_seeded_weights_and_resolution(tmp_path, name, fmt):
    sp, arch = _arch(name, resolution=132)  # 132 -> 66 -> 33 -> 17 -> 9 -> 5: odd maps from stage 3 on
    res = sp.input_resolution(arch)
    x = torch.randn((2, 3, res, res), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    ref = torch_out(sp.build(arch), x)
    path = export_arch(sp, arch.encode(), fmt, tmp_path / f"a.{fmt}", seed=5, batch=2)
    assert_close(run_tflite(path, x)[0] if fmt == "tflite" else run_onnx(path, x), ref)


def test_fc_after_fc(tmp_path):
    # lightnas's head: the second Linear sees [b, c] already, so no RESHAPE before it
    module = nn.Sequential(build_op(OpSpec("pool", 5, 5, 32, 32)), Linear(32, 24, "relu6"), Linear(24, 10)).eval()
    x = torch.randn((2, 32, 5, 5), generator=torch.Generator().manual_seed(1))
    out, ops = run_tflite(export_module(module, (2, 32, 5, 5), "tflite", tmp_path / "h.tflite"), x)
    assert ops == ["MEAN", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert_close(out, torch_out(module, x))
    assert_close(run_onnx(export_module(module, (2, 32, 5, 5), "onnx", tmp_path / "h.onnx"), x), torch_out(module, x))


def test_linear_on_a_map_flattens_in_nchw_order(tmp_path):
    module = Linear(4 * 3 * 3, 5).eval()
    x = torch.randn((1, 4, 3, 3), generator=torch.Generator().manual_seed(1))
    out, ops = run_tflite(export_module(module, (1, 4, 3, 3), "tflite", tmp_path / "l.tflite"), x)
    assert ops == ["TRANSPOSE", "RESHAPE", "FULLY_CONNECTED"]
    assert_close(out, torch_out(module, x))


# -- API behaviour ----------------------------------------------------------------------------
def test_export_op_is_deterministic_and_leaves_global_rng(tmp_path):
    op = mb(8, 16, 16, 48, 3, 1, "swish", se=8)
    state = torch.random.get_rng_state()
    a = export_op(op, "tflite", tmp_path / "a.tflite", seed=3).read_bytes()
    b = export_op(op, "tflite", tmp_path / "b.tflite", seed=3).read_bytes()
    c = export_op(op, "tflite", tmp_path / "c.tflite", seed=4).read_bytes()
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == b and a != c


def test_export_creates_parent_dirs_and_returns_path(tmp_path):
    op = OpSpec("pool", 7, 7, 32, 32)
    for fmt in ("onnx", "tflite"):
        target = tmp_path / "deep" / "er" / f"pool.{fmt}"
        assert export_op(op, fmt, target) == target
        assert target.stat().st_size > 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["pool.onnx", "pool.tflite"]  # no temp file left


def test_export_restores_training_flag(tmp_path):
    module = build_op(mb(8, 16, 16, 48, 3, 1)).train()
    export_module(module, (1, 16, 8, 8), "tflite", tmp_path / "m.tflite")
    assert module.training


def test_unknown_format_lists_formats(tmp_path):
    with pytest.raises(ConfigError, match="onnx, tflite"):
        export_op(OpSpec("pool", 7, 7, 32, 32), "coreml", tmp_path / "x")


@pytest.mark.parametrize("shape", [(1, 3, 8), (1, 3, 0, 8), (1, 3, 8.0, 8), "1,3,8,8"])
def test_bad_input_shape(tmp_path, shape):
    with pytest.raises(ConfigError, match="input_shape"):
        export_module(nn.Identity(), shape, "onnx", tmp_path / "x.onnx")


def test_unsupported_module_for_tflite_names_the_class(tmp_path):
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh())
    with pytest.raises(ConfigError, match="Conv2d"):
        export_module(module, (1, 3, 8, 8), "tflite", tmp_path / "x.tflite")
    assert not (tmp_path / "x.tflite").exists()


def test_tflite_export_is_fast(tmp_path):
    # a measurement campaign exports ~150 ops; each must take well under a second
    sp = space("proxylessnas")
    ops = [op for row in sp.choice_ops(224, 1)[:4] for op in row if op is not None]
    start = time.perf_counter()
    for i, op in enumerate(ops):
        export_op(op, "tflite", tmp_path / f"{i}.tflite")
    per_op_s = (time.perf_counter() - start) / len(ops)
    assert per_op_s < 0.5, f"{per_op_s:.3f} s per op"
