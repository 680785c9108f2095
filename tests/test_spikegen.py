"""snngraph.spikegen against snnTorch 1.0.0's spikegen: equal results, same RNG use, bug fixes."""

import itertools

import pytest
import torch

import snngraph.spikegen as sg

S = pytest.importorskip("snntorch.spikegen")


def _data(seed=0, shape=(3, 5)):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen)
    x[0, 0], x[0, 1], x[1, 2] = 0.0, 1.0, 0.005  # bounds and a value below the threshold
    return x


def _both(fn_ref, fn_ours, seed=None):
    """Run snnTorch's and ours (under the same seed if given); exceptions are returned."""
    results = []
    for fn in (fn_ref, fn_ours):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            results.append(fn())
        except Exception as err:  # noqa: BLE001 - snnTorch raises bare Exception
            results.append(err)
    return results


# ---------------------------------------------------------------- rate


@pytest.mark.parametrize("gain,offset", [(1, 0), (0.5, 0.1), (2.0, -0.3)])
@pytest.mark.parametrize("first_spike_time", [0, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rate_static_same_seed_same_spikes(gain, offset, first_spike_time, dtype):
    x = _data().to(dtype)
    kw = dict(num_steps=7, gain=gain, offset=offset, first_spike_time=first_spike_time)
    ref, ours = _both(lambda: S.rate(x, **kw), lambda: sg.rate(x, **kw), seed=11)
    assert ours.shape == (7, 3, 5) and ours.dtype == dtype
    assert torch.equal(ref, ours)
    assert not ours[:first_spike_time].any()


@pytest.mark.parametrize("first_spike_time", [0, 2])
def test_rate_time_varying_same_seed_same_spikes(first_spike_time):
    x = torch.rand(6, 2, 4)
    kw = dict(time_var_input=True, first_spike_time=first_spike_time)
    ref, ours = _both(lambda: S.rate(x, **kw), lambda: sg.rate(x, **kw), seed=3)
    assert ours.shape == (6 + first_spike_time, 2, 4)
    assert torch.equal(ref, ours)


def test_rate_time_varying_applies_gain_unlike_snntorch():
    x = torch.full((50, 20), 0.5)
    torch.manual_seed(0)
    assert S.rate(x, gain=0, time_var_input=True).sum() > 0  # snnTorch ignores the gain
    assert sg.rate(x, gain=0, time_var_input=True).sum() == 0
    assert sg.rate(x, gain=0, offset=1, time_var_input=True).all()


def test_rate_statistics():
    torch.manual_seed(0)
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0, 1.7, -0.2])
    spikes = sg.rate(p, num_steps=20000)
    expected = p.clamp(0, 1)
    assert torch.allclose(spikes.mean(0), expected, atol=0.015)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_rate_conv_same_seed_and_clipping():
    x = torch.randn(4, 6) * 2
    ref, ours = _both(lambda: S.rate_conv(x), lambda: sg.rate_conv(x), seed=5)
    assert torch.equal(ref, ours)
    assert torch.equal(sg.rate_conv(torch.tensor([2.0, -1.0, 1.0, 0.0])), torch.tensor([1.0, 0, 1, 0]))
    assert sg.rate_conv(torch.tensor([1, 0, 1])).dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(), "num_steps"),
        (dict(num_steps=5, first_spike_time=5), "first_spike_time"),
        (dict(num_steps=-1), "num_steps"),
        (dict(num_steps=4, time_var_input=True), "num_steps"),
        (dict(num_steps=4, first_spike_time=-1), "first_spike_time"),
    ],
)
def test_rate_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sg.rate(torch.rand(3), **kwargs)
    with pytest.raises(TypeError, match="num_steps"):
        sg.rate(torch.rand(3), num_steps=2.5)
    with pytest.raises(TypeError, match="data"):
        sg.rate([0.5], num_steps=2)


# ---------------------------------------------------------------- latency

LATENCY_OPTIONS = dict(
    num_steps=[False, 6, 15],
    threshold=[0.01, 0.2],
    tau=[1, 4],
    first_spike_time=[0, 2],
    on_target=[1, 1.5],
    off_target=[0, 0.25],
    clip=[False, True],
    normalize=[False, True],
    linear=[False, True],
    interpolate=[False, True],
    bypass=[False, True],
    epsilon=[1e-7, 1e-3],
)


def test_latency_equals_snntorch_for_every_option_combination():
    x = _data()
    compared = 0
    for combo in itertools.product(*LATENCY_OPTIONS.values()):
        kw = dict(zip(LATENCY_OPTIONS, combo, strict=True))
        ref, ours = _both(lambda kw=kw: S.latency(x, **kw), lambda kw=kw: sg.latency(x, **kw))
        if isinstance(ref, Exception):
            assert isinstance(ours, ValueError), kw
            continue
        assert not isinstance(ours, Exception), (kw, ours)
        if kw["clip"] and kw["interpolate"]:
            continue  # snnTorch ignores clip here: see test_latency_clip_with_interpolate
        assert ours.shape == ref.shape and torch.equal(ours, ref), kw
        compared += 1
    assert compared > 2000


def test_latency_code_and_interpolate_equal_snntorch():
    x = _data(1)
    for kw in (
        dict(num_steps=9, normalize=True),
        dict(num_steps=9, linear=True, tau=3),
        dict(tau=2, first_spike_time=1),
        dict(num_steps=9, normalize=True, linear=True),
    ):
        for ref, ours in zip(S.latency_code(x, **kw), sg.latency_code(x, **kw), strict=True):
            assert torch.equal(ref, ours)
    times = torch.tensor([[0.0, 2.2, 4.0], [7.0, 5.6, 12.0]])
    for on, off in ((1, 0), (1.25, 0.25), (2, 1)):
        assert torch.equal(S.latency_interpolate(times, 8, on, off), sg.latency_interpolate(times, 8, on, off))


CODE_OPTIONS = dict(
    num_steps=[False, 1, 6],
    threshold=[0.01, 0.3, 0, 1],
    tau=[1, 2.5, 0],
    first_spike_time=[0, 2, 7],
    normalize=[False, True],
)
CODE_DATA = {
    "unit": _data(2).double(),
    "wide": torch.tensor([[-0.5, 0.2, 1.5], [0.0, 0.9, 3.0]], dtype=torch.float64),
    "float32": _data(3),
}


@pytest.mark.parametrize("data", sorted(CODE_DATA))
@pytest.mark.parametrize("name", ["latency_code_linear", "latency_code_log"])
def test_latency_code_linear_and_log_equal_snntorch(name, data):
    """Every option combination, valid or not: the same times bit for bit, or both raise."""
    x, ref_fn, our_fn = CODE_DATA[data], getattr(S, name), getattr(sg, name)
    extra = [dict(), dict(epsilon=1e-3)] if name == "latency_code_log" else [dict()]
    compared = raised = 0
    for combo in itertools.product(*CODE_OPTIONS.values()):
        for more in extra:
            kw = dict(zip(CODE_OPTIONS, combo, strict=True)) | more
            ref, ours = _both(lambda kw=kw: ref_fn(x, **kw), lambda kw=kw: our_fn(x, **kw))
            if isinstance(ref, Exception):
                assert isinstance(ours, ValueError), (kw, ours)
                raised += 1
                continue
            assert not isinstance(ours, Exception), (kw, ours)
            assert ours.dtype == ref.dtype and torch.equal(ours, ref), kw
            compared += 1
    assert compared >= 20 and raised >= 20


def test_latency_code_linear_and_log_positional_and_docstring():
    a = torch.tensor([0.02, 0.5, 1])
    assert torch.allclose(sg.latency_code_linear(a, 5, 0.01, 1, 0, True), torch.tensor([3.92, 2.0, 0.0]))
    args = (5, 0.01, 1, 0, True, 1e-7)
    assert torch.equal(sg.latency_code_log(a, *args), S.latency_code_log(a, *args))
    with pytest.raises(TypeError, match="data"):
        sg.latency_code_log([0.5])


def test_latency_keeps_negative_and_higher_off_target():
    x = torch.tensor([[0.9, 0.3]])
    ours = sg.latency(x, num_steps=5, on_target=1, off_target=-1, normalize=True)
    assert set(ours.unique().tolist()) == {-1.0, 1.0} and (ours == 1).sum() == 2
    # snnTorch clamps the off steps to 0 instead
    assert (S.latency(x, num_steps=5, on_target=1, off_target=-1, normalize=True) == -1).sum() == 0
    inverted = sg.latency(x, num_steps=5, on_target=0, off_target=1, normalize=True)
    assert (inverted == 0).sum() == 2  # snnTorch returns all ones: the spikes are lost
    assert (S.latency(x, num_steps=5, on_target=0, off_target=1, normalize=True) == 0).sum() == 0


def test_latency_clip_with_interpolate():
    x = torch.tensor([0.005, 0.5, 1.0])
    ours = sg.latency(x, num_steps=5, clip=True, interpolate=True, normalize=True, linear=True)
    assert torch.equal(ours[:, 0], torch.zeros(5))  # below threshold: off at every step
    ref = S.latency(x, num_steps=5, clip=True, interpolate=True, normalize=True, linear=True)
    assert ref[:, 0].max() == 1  # snnTorch still ramps up to a spike
    assert torch.equal(ours[:, 1:], ref[:, 1:])


def test_latency_interpolate_never_drops_the_spike():
    times = torch.tensor([3.0])
    ref = S.latency_interpolate(times, 5, on_target=0.7, off_target=0.1)
    assert ref.max() < 0.7 - 1e-3  # snnTorch's rounding turns the spike step off
    ours = sg.latency_interpolate(times, 5, on_target=0.7, off_target=0.1)
    assert ours[3, 0] == torch.tensor(0.7) and ours[4, 0] == torch.tensor(0.1)
    assert torch.equal(ours[:3], ref[:3])


def test_latency_dtype_and_errors():
    assert sg.latency(_data().double(), num_steps=8, normalize=True).dtype == torch.float64
    with pytest.raises(ValueError, match="data"):
        sg.latency(torch.tensor([1.5]), num_steps=5)
    with pytest.raises(ValueError, match="num_steps"):
        sg.latency(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="threshold"):
        sg.latency(torch.tensor([0.5]), num_steps=5, threshold=0)
    with pytest.raises(ValueError, match="tau"):
        sg.latency(torch.tensor([0.5]), num_steps=5, tau=0)
    with pytest.raises(ValueError, match="out of range"):
        sg.latency(torch.tensor([0.02]), num_steps=3, tau=5)
    with pytest.raises(ValueError, match="on_target"):
        sg.latency_interpolate(torch.tensor([1.0]), 4, on_target=0, off_target=1)


# ---------------------------------------------------------------- delta


@pytest.mark.parametrize("padding", [False, True])
@pytest.mark.parametrize("off_spike", [False, True])
@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5])
def test_delta_equals_snntorch(padding, off_spike, threshold):
    x = torch.randn(12, 3, 4)
    kw = dict(threshold=threshold, padding=padding, off_spike=off_spike)
    assert torch.equal(S.delta(x, **kw), sg.delta(x, **kw))


def test_delta_docstring_examples():
    a = torch.tensor([1, 2, 2.9, 3, 3.9])
    assert sg.delta(a, threshold=1).tolist() == [1, 1, 0, 0, 0]
    assert sg.delta(a, threshold=1, padding=True).tolist() == [0, 1, 0, 0, 0]
    b = torch.tensor([1, 2, 0, 2, 2.9])
    assert sg.delta(b, threshold=1, off_spike=True).tolist() == [1, 1, -1, 1, 0]


# ---------------------------------------------------------------- one-hot


def test_one_hot_round_trip_and_snntorch():
    targets = torch.tensor([3, 0, 2, 2, 1])
    assert torch.equal(sg.to_one_hot(targets, 4), S.to_one_hot(targets, 4))
    assert torch.equal(sg.to_one_hot(targets.float(), 6), S.to_one_hot(targets.float(), 6))
    hot = sg.to_one_hot(targets, 4)
    assert torch.equal(sg.to_one_hot_inverse(hot), S.to_one_hot_inverse(hot))
    assert torch.equal(sg.from_one_hot(hot), targets)
    single = torch.tensor([0.0, 0, 1, 0])
    assert torch.equal(sg.from_one_hot(single), S.from_one_hot(single))


def test_from_one_hot_gives_classes_not_rows():
    hot = torch.tensor([[0.0, 1, 0], [1, 0, 0]])
    assert S.from_one_hot(hot).tolist() == [0, 1]  # snnTorch: row numbers
    assert sg.from_one_hot(hot).tolist() == [1, 0]
    with pytest.raises(ValueError, match="exactly one"):
        sg.from_one_hot(torch.tensor([[0.0, 1, 1], [1, 0, 0]]))


@pytest.mark.parametrize(
    "targets,match",
    [
        (torch.tensor([4]), r"\[0, 3\]"),
        (torch.tensor([-1]), r"\[0, 3\]"),
        (torch.tensor([[1]]), "1-D"),
    ],
)
def test_to_one_hot_errors(targets, match):
    with pytest.raises(ValueError, match=match):
        sg.to_one_hot(targets, 4)


# ---------------------------------------------------------------- rate targets


@pytest.mark.parametrize("pattern", ["regular", "uniform", "poisson"])
@pytest.mark.parametrize("rate", [0, 0.3, 0.5, 1])
@pytest.mark.parametrize("first_spike_time", [0, 2])
def test_target_rate_code_equals_snntorch(pattern, rate, first_spike_time):
    kw = dict(first_spike_time=first_spike_time, rate=rate, firing_pattern=pattern)
    ref, ours = _both(lambda: S.target_rate_code(10, **kw), lambda: sg.target_rate_code(10, **kw), seed=7)
    for a, b in zip(ref, ours, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("on,off", [(1, 0), (1.25, 0.25), (0.5, 0.5), (3, 0)])
def test_rate_interpolate_equals_snntorch(on, off):
    for times in ([0, 4], [1, 2, 7], [3], [0, 1, 2, 3, 4, 5, 6, 7], [5, 2]):
        spike_time = torch.tensor(times)
        if on == off:  # snnTorch fails (zero arange step); ours is constant
            assert torch.equal(sg.rate_interpolate(spike_time, 8, on, off), torch.full((8,), off))
            continue
        ref = S.rate_interpolate(torch.tensor(sorted(times)), 8, on, off)
        assert torch.equal(ref, sg.rate_interpolate(spike_time, 8, on, off))
    assert torch.equal(sg.rate_interpolate(torch.tensor([]), 4, 1, 0.5), torch.full((4,), 0.5))


@pytest.mark.parametrize("on,off", [(1, 0), (1.5, 0.5), (0, 1), (2, 2)])
@pytest.mark.parametrize("first_spike_time,num_steps", [(0, False), (0, 6), (2, 6)])
def test_targets_rate_constant_equals_snntorch(on, off, first_spike_time, num_steps):
    targets = torch.tensor([1, 3, 0])
    kw = dict(num_steps=num_steps, first_spike_time=first_spike_time, on_target=on, off_target=off)
    if first_spike_time and on < off:
        # snnTorch's clamp loses the spikes here; ours keeps them
        assert (sg.targets_rate(targets, 4, **kw) == on).sum() == 3 * (6 - first_spike_time)
        return
    assert torch.equal(S.targets_rate(targets, 4, **kw), sg.targets_rate(targets, 4, **kw))


@pytest.mark.parametrize("pattern", ["regular", "uniform", "poisson"])
@pytest.mark.parametrize("rates", [(0.5, 0.25), (1, 0.4), (0.6, 0)])
@pytest.mark.parametrize("first_spike_time", [0, 1])
def test_targets_rate_interpolated_equals_snntorch(pattern, rates, first_spike_time):
    # snnTorch only runs time-varying targets when num_classes == num_steps
    targets = torch.tensor([1, 4, 0])
    kw = dict(
        num_steps=5,
        first_spike_time=first_spike_time,
        correct_rate=rates[0],
        incorrect_rate=rates[1],
        firing_pattern=pattern,
        interpolate=True,
        on_target=1.25,
        off_target=0.25,
    )
    ref, ours = _both(lambda: S.targets_rate(targets, 5, **kw), lambda: sg.targets_rate(targets, 5, **kw), seed=2)
    assert ours.shape == (5, 3, 5) and torch.equal(ref, ours)


@pytest.mark.parametrize("pattern", ["regular", "uniform", "poisson"])
def test_targets_rate_time_varying_is_time_batch_class(pattern):
    targets = torch.tensor([2, 0])
    kw = dict(num_steps=8, correct_rate=0.5, incorrect_rate=0.25, firing_pattern=pattern, on_target=2, off_target=-1)
    with pytest.raises(RuntimeError):
        S.targets_rate(targets, 3, **kw)  # snnTorch broadcasts time against classes
    torch.manual_seed(4)
    correct, _ = sg.target_rate_code(8, 0, 0.5, pattern)
    incorrect, _ = sg.target_rate_code(8, 0, 0.25, pattern)
    torch.manual_seed(4)
    ours = sg.targets_rate(targets, 3, **kw)
    assert ours.shape == (8, 2, 3)
    assert torch.equal(ours[:, 0, 2], torch.where(correct.bool(), 2.0, -1.0))
    assert torch.equal(ours[:, 1, 1], torch.where(incorrect.bool(), 2.0, -1.0))


def test_targets_rate_errors():
    t = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="correct_rate"):
        sg.targets_rate(t, 2, num_steps=4, correct_rate=1.5)
    with pytest.raises(ValueError, match="num_steps"):
        sg.targets_rate(t, 2, correct_rate=0.5)
    with pytest.raises(ValueError, match="num_steps"):
        sg.targets_rate(t, 2, first_spike_time=2)
    with pytest.raises(ValueError, match="incorrect_rate"):
        sg.targets_rate(t, 2, num_steps=4, correct_rate=0.2, incorrect_rate=0.5)
    with pytest.raises(ValueError, match="firing_pattern"):
        sg.targets_rate(t, 2, num_steps=4, correct_rate=0.5, firing_pattern="burst")
    with pytest.raises(ValueError, match="code"):
        sg.targets_convert(t, 2, code="phase")


# ---------------------------------------------------------------- latency targets


@pytest.mark.parametrize(
    "kw",
    [
        dict(num_steps=5, normalize=True),
        dict(num_steps=5, normalize=True, interpolate=True),
        dict(num_steps=6, linear=True, clip=True, first_spike_time=1),
        dict(bypass=True, tau=2),
    ],
)
def test_targets_latency_and_convert_equal_snntorch(kw):
    targets = torch.tensor([0, 3, 1])
    ref = S.targets_latency(targets, 4, **kw)
    assert torch.equal(ref, sg.targets_latency(targets, 4, **kw))
    # snnTorch's targets_convert drops `interpolate`; ours passes it on to targets_latency
    convert_ref = ref if kw.get("interpolate") else S.targets_convert(targets, 4, code="latency", **kw)
    assert torch.equal(convert_ref, sg.targets_convert(targets, 4, code="latency", **kw))


def test_targets_convert_latency_passes_on_off_targets():
    targets = torch.tensor([0, 2])
    kw = dict(code="latency", num_steps=4, normalize=True, on_target=2, off_target=0.5)
    ours = sg.targets_convert(targets, 3, **kw)
    assert torch.equal(ours, sg.targets_latency(targets, 3, num_steps=4, normalize=True, on_target=2, off_target=0.5))
    assert set(ours.unique().tolist()) == {0.5, 2.0}
    assert set(S.targets_convert(targets, 3, **kw).unique().tolist()) == {0.0, 1.0}  # dropped


def test_targets_convert_rate_equals_snntorch():
    targets = torch.tensor([2, 0, 1])
    for kw in (dict(), dict(on_target=3, off_target=1), dict(num_steps=4, first_spike_time=1)):
        assert torch.equal(S.targets_convert(targets, 3, **kw), sg.targets_convert(targets, 3, **kw))
