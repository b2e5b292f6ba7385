"""The searchers' shared parts: proxy tasks, the proxy supernet, the stand-in (all fast)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hwprof
from hwprof.errors import ConfigError, SpaceError
from searchers.base import Budget
from searchers.data import Task, _stratified_split, digits, load_task, npz, random_crop
from searchers.supernet import (
    SuperNet,
    accuracy,
    make_supernet,
    proxy_channels,
    proxy_choice_ops,
    recalibrate_bn,
)
from searchers.testing import (
    RandomSearch,
    StandInSuperNet,
    StandInTask,
    cell_macs,
    conformance_latency,
    macs_table_model,
)

torch.set_num_threads(1)
SPACES = ["proxylessnas", "fbnet", "fbnet-c100", "spnas", "lightnas", "tfnas", "spos", "ofa-mbv3"]


@pytest.fixture(scope="module")
def task() -> Task:
    return digits(resolution=16, seed=0)


# -- data ---------------------------------------------------------------------------
def test_digits_shapes_split_and_normalisation(task: Task) -> None:
    n = len(task.y_weights) + len(task.y_arch) + len(task.y_test)
    assert n == 1797 and task.classes == 10 and task.resolution == 16
    for x, y in ((task.x_weights, task.y_weights), (task.x_arch, task.y_arch), (task.x_test, task.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (3, 16, 16) and len(x) == len(y)
    assert abs(len(task.y_weights) / n - 0.6) < 0.01 and abs(len(task.y_arch) / n - 0.2) < 0.01
    # stratified: every class within one image of its share in each split
    full = torch.bincount(torch.cat([task.y_weights, task.y_arch, task.y_test]), minlength=10).numpy()
    for y, frac in ((task.y_weights, 0.6), (task.y_arch, 0.2), (task.y_test, 0.2)):
        assert np.all(np.abs(torch.bincount(y, minlength=10).numpy() - frac * full) <= 1.0)
    mean = task.x_weights.mean(dim=(0, 2, 3))
    std = task.x_weights.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-4) and torch.allclose(std, torch.ones(3), atol=1e-3)
    assert torch.equal(task.x_weights[:, 0], task.x_weights[:, 2])  # grey repeated to 3 channels


def test_split_is_a_partition_fixed_by_seed() -> None:
    y = np.repeat(np.arange(7), 23)
    a, b = _stratified_split(y, 3), _stratified_split(y, 3)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    allidx = np.concatenate(a)
    assert len(allidx) == len(y) and len(np.unique(allidx)) == len(y)
    c = _stratified_split(y, 4)
    assert not np.array_equal(a[0], c[0])


def test_digits_deterministic_by_seed() -> None:
    a, b, c = digits(8, seed=1), digits(8, seed=1), digits(8, seed=2)
    assert torch.equal(a.x_arch, b.x_arch) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_arch, c.y_arch)


def test_batches_epoch_drop_last_and_determinism(task: Task) -> None:
    g = torch.Generator().manual_seed(0)
    bs = list(task.batches("weights", 100, generator=g))
    assert len(bs) == task.steps_per_epoch("weights", 100) == len(task.y_weights) // 100
    assert all(len(y) == 100 for _, y in bs)
    tb = list(task.batches("test", 100, generator=g))
    assert sum(len(y) for _, y in tb) == len(task.y_test) == sum(1 for _ in range(len(task.y_test)))
    assert sorted(torch.cat([y for _, y in tb]).tolist()) == sorted(task.y_test.tolist())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = next(task.batches("arch", 32, generator=g1, augment=True))
    b = next(task.batches("arch", 32, generator=g2, augment=True))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    big = list(task.batches("arch", 10_000, generator=g))  # a split smaller than a batch: one batch of it
    assert len(big) == 1 and len(big[0][1]) == len(task.y_arch)
    with pytest.raises(ConfigError):
        next(task.batches("train", 8, generator=g))


def test_random_crop_is_a_shift_without_flips() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    g = torch.Generator().manual_seed(0)
    y = random_crop(x, 2, g)
    assert y.shape == x.shape
    xp = F.pad(x, (2,) * 4, mode="replicate")
    for b in range(2):
        assert any(
            torch.equal(y[b], xp[b, :, i : i + 6, j : j + 6]) for i in range(5) for j in range(5)
        ), "every augmented image is a crop of the padded image"


def test_npz_task_and_load_task(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 12, 12), dtype=np.uint8)
    y = np.repeat(np.arange(5), 10)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    t = npz(path, resolution=8)
    assert t.name == "mine" and t.classes == 5 and t.x_weights.shape[1:] == (3, 8, 8)
    assert len(t.y_weights) + len(t.y_arch) + len(t.y_test) == 50
    t2 = load_task(f"npz:{path}", resolution=12, width_mult=0.5)
    assert t2.resolution == 12 and t2.width_mult == 0.5
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(ConfigError, match="needs arrays"):
        npz(tmp_path / "bad.npz")
    with pytest.raises(ConfigError, match="no such task file"):
        npz(tmp_path / "none.npz")
    with pytest.raises(ConfigError, match="unknown task"):
        load_task("cifar")


# -- supernet -------------------------------------------------------------------------
def test_proxy_channels() -> None:
    assert [proxy_channels(c, 0.25) for c in (16, 24, 40, 80, 96, 1280)] == [8, 8, 8, 24, 24, 320]
    assert proxy_channels(1, 0.1) == 8 and proxy_channels(64, 1.0) == 64
    with pytest.raises(ConfigError):
        proxy_channels(16, 0.0)


@pytest.mark.parametrize("name", SPACES)
def test_proxy_choice_ops_follow_the_space(name: str) -> None:
    space = hwprof.space(name)
    proxy = proxy_choice_ops(space, 0.25, 32)
    real = space.choice_ops()
    assert len(proxy) == space.num_layers and all(len(r) == space.max_choices for r in proxy)
    for l, (prow, rrow) in enumerate(zip(proxy, real)):
        for k, (p, r) in enumerate(zip(prow, rrow)):
            assert (p is None) == (r is None) == (not space.mask[l, k])
            if p is None:
                continue
            assert (p.kind, p.kernel, p.stride, p.groups, p.act) == (r.kind, r.kernel, r.stride, r.groups, r.act)
            assert p.cout % 8 == 0 and p.cout >= 8 and p.cout <= max(8, r.cout)
            assert (p.se > 0) == (r.se > 0)


@pytest.mark.parametrize("name", SPACES)
def test_supernet_builds_and_runs_every_space(name: str) -> None:
    space = hwprof.space(name)
    net = SuperNet(space, width_mult=0.25, resolution=32, classes=10)
    assert (net.num_layers, net.max_choices) == (space.num_layers, space.max_choices)
    assert np.array_equal(net.mask, space.mask) and net.candidates == space.candidates
    x = torch.randn(2, 3, 32, 32)
    idx = space.indices(space.sample(1, seed=1)[0])
    assert net(x, idx).shape == (2, 10)
    for layer, real in zip(net.layers, space.choice_ops()):
        for op, spec in zip(layer.ops, real):
            if spec is not None and spec.kind == "skip":
                assert type(op) is nn.Identity
            elif spec is not None and spec.kind == "conv":  # a skip that is a 1×1 conv at real scale stays one
                assert type(op).__name__ == "ConvBNAct"


@pytest.fixture(scope="module")
def pnet() -> SuperNet:
    torch.manual_seed(0)
    return SuperNet(hwprof.space("proxylessnas"), width_mult=0.25, resolution=16, classes=10).eval()


def _count_calls(net: SuperNet) -> tuple[np.ndarray, list]:
    counts = np.zeros(net.mask.shape, dtype=int)
    handles = []
    for l, layer in enumerate(net.layers):
        for k, op in enumerate(layer.ops):
            def hook(*_, l=l, k=k):
                counts[l, k] += 1
            handles.append(op.register_forward_hook(hook))
    return counts, handles


def test_single_path_and_weights_forward_agree(pnet: SuperNet) -> None:
    space = pnet.space
    x = torch.randn(3, 3, 16, 16)
    idx = space.indices(space.sample(1, seed=2)[0])
    w = torch.zeros(pnet.num_layers, pnet.max_choices)
    w[torch.arange(pnet.num_layers), torch.as_tensor(idx)] = 1.0
    counts, handles = _count_calls(pnet)
    try:
        a = pnet(x, idx)
        assert counts.sum() == pnet.num_layers and all(counts[l, idx[l]] == 1 for l in range(pnet.num_layers))
        b = pnet(x, w)
        c = pnet(x, torch.as_tensor(idx))
        d = pnet(x, list(map(int, idx)))
    finally:
        for h in handles:
            h.remove()
    assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)


def test_straight_through_runs_one_op_and_passes_gradients(pnet: SuperNet) -> None:
    lat = macs_table_model(pnet.space)
    alpha = torch.zeros(pnet.num_layers, pnet.max_choices, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    w = lat.gumbel_softmax(alpha, tau=1.0, hard=True, generator=g)
    counts, handles = _count_calls(pnet)
    try:
        loss = F.cross_entropy(pnet(torch.randn(4, 3, 16, 16), w), torch.arange(4))
    finally:
        for h in handles:
            h.remove()
    assert counts.sum() == pnet.num_layers
    loss.backward()
    assert alpha.grad is not None and torch.count_nonzero(alpha.grad) > 0


def test_compute_all_reaches_every_legal_weight(pnet: SuperNet) -> None:
    mask = torch.as_tensor(pnet.mask)
    w0 = torch.zeros(pnet.num_layers, pnet.max_choices)
    w0[:, 0] = 1.0  # one-hot on k3_e3
    x = torch.randn(2, 3, 16, 16)
    for compute, expect in (("nonzero", w0 != 0), ("all", mask)):
        w = w0.clone().requires_grad_(True)
        pnet(x, w, compute=compute).sum().backward()
        assert torch.equal(w.grad != 0, expect), compute
    bad = w0.clone()
    bad[0, -1] = 0.5  # skip at a stride-2 layer: not in the space
    with pytest.raises(SpaceError):
        pnet(x, bad)
    with pytest.raises(SpaceError):
        pnet(x, [0] * (pnet.num_layers - 1))


def test_layer_forward_and_path_parameters(pnet: SuperNet) -> None:
    h = pnet.stem(torch.randn(2, 3, 16, 16))
    assert torch.equal(pnet.layer_forward(0, h, 2), pnet.layers[0].ops[2](h))
    idx = [0] * pnet.num_layers
    params = pnet.path_parameters(idx)
    expect = list(pnet.stem.parameters()) + [p for l in pnet.layers for p in l.ops[0].parameters()]
    expect += list(pnet.head.parameters())
    assert len(params) == len(expect) and all(a is b for a, b in zip(params, expect))
    assert sum(p.numel() for p in params) < sum(p.numel() for p in pnet.parameters())


def test_recalibrate_bn_and_accuracy(task: Task) -> None:
    torch.manual_seed(0)
    space = hwprof.space("spnas")
    net = SuperNet(space, resolution=16, classes=10)
    net.train()
    idx = [0] * space.num_layers
    bn = net.stem[0].bn
    g = torch.Generator().manual_seed(0)
    recalibrate_bn(net, idx, task.batches("arch", 64, generator=g), max_batches=2)
    assert net.training and int(bn.num_batches_tracked) == 2 and bn.momentum == 0.1
    # cumulative average over the two batches: the running mean is their average of batch means
    x = torch.cat([b[0] for b in task.batches("arch", 64, generator=torch.Generator().manual_seed(0))][:2])
    stem_out = net.stem[0].conv(x)
    assert torch.allclose(bn.running_mean, stem_out.mean((0, 2, 3)), atol=1e-4)
    acc = accuracy(net, idx, task.x_test, task.y_test, batch_size=128)
    assert 0.0 <= acc <= 1.0 and net.training


def test_make_supernet(task: Task) -> None:
    space = hwprof.space("spnas")
    net = make_supernet(task, space)
    assert isinstance(net, SuperNet) and net.classes == 10 and net.resolution == 16 and net.width_mult == 0.25
    assert isinstance(make_supernet(StandInTask(space), space), StandInSuperNet)


# -- stand-in -----------------------------------------------------------------------------
def test_standin_quality() -> None:
    space = hwprof.space("proxylessnas")
    a, b = StandInTask(space, seed=3), StandInTask(space, seed=3)
    assert np.array_equal(a.quality_, b.quality_) and a.quality_.shape == space.mask.shape
    assert np.all(a.quality_[~space.mask] == 0) and np.all(a.centred_[~space.mask] == 0)
    assert not np.array_equal(a.quality_, StandInTask(space, seed=4).quality_)
    assert np.allclose(a.centred_.sum(1), 0.0)
    zero = StandInTask(space, strength=0.0, noise=0.0)
    assert not zero.quality_.any()
    pure = StandInTask(space, noise=0.0)
    assert np.allclose(pure.quality_, np.log1p(cell_macs(space) / 1e6))
    lin = StandInTask(space, noise=0.0, quality="linear")
    assert lin.quality_.max() == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        StandInTask(space, quality="cubic")


def test_standin_supernet_loss_and_gradient() -> None:
    space = hwprof.space("lightnas")
    t = StandInTask(space, seed=0)
    net = t.make_supernet(space)
    lat = macs_table_model(space)
    alpha = torch.randn(space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)
    w = lat.masked_softmax(alpha)
    w.retain_grad()
    x, y = next(t.batches("weights", 8, generator=torch.Generator()))
    logits = net(x, w, depth_weights=None, mids=None)
    assert logits.shape == (len(y), 2)
    loss = F.cross_entropy(logits, y)
    s = (w * torch.as_tensor(t.centred_)).sum()
    assert torch.allclose(loss, F.softplus(-s))
    loss.backward()
    expect = -torch.sigmoid(-s.detach()) * torch.as_tensor(t.centred_)
    assert torch.allclose(w.grad, expect, atol=1e-12)
    idx = space.indices(space.sample(1, seed=0)[0])
    one_hot = torch.zeros(space.num_layers, space.max_choices, dtype=torch.float64)
    one_hot[torch.arange(space.num_layers), torch.as_tensor(idx)] = 1.0
    assert net(x, idx)[0, 0].item() == pytest.approx(net(x, one_hot)[0, 0].item(), abs=1e-5)
    assert t.fitness(idx) == pytest.approx(1 / (1 + np.exp(-t.score(idx))))
    assert t.score(t.best_indices()) >= max(t.score(space.indices(a)) for a in space.sample(200, seed=1))
    assert net.path_parameters(idx) == [net.dummy]
    assert sum(1 for _ in t.batches("arch", 64, generator=torch.Generator())) == t.steps_per_epoch("arch", 64) == 40


def test_standin_costs_microseconds_per_step() -> None:
    space = hwprof.space("proxylessnas")
    t = StandInTask(space)
    net = t.make_supernet(space)
    lat = macs_table_model(space)
    alpha = torch.zeros(space.num_layers, space.max_choices, requires_grad=True)
    opt = torch.optim.Adam([alpha, *net.parameters()], lr=1e-3)
    x, y = next(t.batches("weights", 32, generator=torch.Generator()))
    n = 200
    start = time.process_time()  # CPU time: other jobs on the machine do not count
    for _ in range(n):
        w = lat.gumbel_softmax(alpha, hard=True)
        loss = F.cross_entropy(net(x, w), y) + 0.01 * lat.expected(w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    per_step = (time.process_time() - start) / n
    assert per_step < 5e-3, f"{per_step * 1e3:.2f} ms per stand-in step (with the latency model)"


# -- conformance latency models and the reference searcher ----------------------------------
def test_conformance_latency_models() -> None:
    class Diff:
        default_space = "lightnas"
        latency_kinds = ("differentiable",)

    class Width:
        default_space = "tfnas"
        latency_kinds = ("differentiable", "width")

    class Runtime:
        default_space = "spnas"
        latency_kinds = ("single-path-runtime",)

    from hwprof.latency import PredictorLatencyModel, SinglePathRuntime, TableLatencyModel

    assert isinstance(conformance_latency(Diff), PredictorLatencyModel)
    assert isinstance(conformance_latency(Runtime), SinglePathRuntime)
    w = conformance_latency(Width)
    assert isinstance(w, TableLatencyModel)
    space = hwprof.space("tfnas")
    g = space.geometry()[0]
    lo, hi = space.mid_range(g, "k3_e6")
    curve = w.width_curve(0, "k3_e6")
    assert curve(hi) > curve(lo) > 0
    arch = space.sample(1, seed=0)[0]
    assert w.arch_latency(arch) == pytest.approx(
        0.05 * space.macs(arch) / 1e6 + 2.0, rel=1e-9
    )


def test_random_search_reference_plugin() -> None:
    space = hwprof.space("spos")
    lat = conformance_latency(RandomSearch, space)
    t = StandInTask(space)
    events: list[dict] = []
    r = RandomSearch(samples=20).fit_search(t, space, lat, target_ms=20.0, budget=Budget(steps=3), seed=1,
                                            callback=events.append)
    assert len(events) == 3 == len(r.trace)
    assert r.latency_ms == lat.arch_latency(r.arch) and space.parse(r.arch)
