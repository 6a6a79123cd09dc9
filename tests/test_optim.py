"""Optimizers: updates against hand computations, groups, state dicts, devices, PyTorch."""
import pickle
import re

import numpy
import pytest
from helpers import host

import minidl
from minidl import backend
from minidl.optim.adam import Adam, AdamW
from minidl.optim.lr_scheduler import CosineAnnealingLR, LinearWarmup, SequentialLR
from minidl.optim.optimizer import weight_decay_groups
from minidl.optim.sgd import SGD


def param(values, device, dtype=numpy.float64):
    return minidl.tensor(numpy.asarray(values, dtype=dtype), requires_grad=True, device=device)


def set_grad(p, values):
    p.grad = minidl.tensor(numpy.asarray(values, dtype=p.dtype), device=p.device).data


def gradient_sequence(shape, steps, seed=0):
    rng = numpy.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(steps)]


def sgd_reference(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """PyTorch's SGD written out step by step in NumPy."""
    p, buf = p.copy(), None
    for grad in grads:
        g = grad + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


# ----------------------------------------------------------------------- SGD

def test_sgd_momentum_by_hand(device):
    p = param([1.0, -2.0], device)
    opt = SGD([p], lr=0.1, momentum=0.9)
    set_grad(p, [0.5, 1.0])
    opt.step()                     # buf = g;             p = p - 0.1 * g
    numpy.testing.assert_allclose(host(p), [0.95, -2.1], rtol=1e-15)
    opt.step()                     # buf = 0.9 * buf + g = [0.95, 1.9]
    numpy.testing.assert_allclose(host(p), [0.855, -2.29], rtol=1e-15)
    numpy.testing.assert_allclose(host(opt.state[p]["momentum_buffer"]), [0.95, 1.9], rtol=1e-15)


def test_sgd_nesterov_weight_decay_dampening_by_hand(device):
    p = param([2.0], device)
    opt = SGD([p], lr=0.5, momentum=0.5, weight_decay=0.25, nesterov=True)
    set_grad(p, [1.0])
    opt.step()          # g = 1 + 0.25*2 = 1.5; buf = 1.5; g = 1.5 + 0.5*1.5 = 2.25; p = 2 - 1.125
    numpy.testing.assert_allclose(host(p), [0.875], rtol=1e-15)
    q = param([2.0], device)
    opt = SGD([q], lr=0.5, momentum=0.5, dampening=0.5)
    for _ in range(2):
        set_grad(q, [1.0])
        opt.step()      # buf = 1, p = 1.5; then buf = 0.5*1 + 0.5*1 = 1, p = 1.0
    numpy.testing.assert_allclose(host(q), [1.0], rtol=1e-15)


@pytest.mark.parametrize("options", [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.8, "nesterov": True},
    {"weight_decay": 0.1},
    {"momentum": 0.9, "weight_decay": 0.05, "nesterov": True},
])
def test_sgd_matches_reference(device, options):
    p0 = numpy.random.default_rng(1).normal(size=(3, 4))
    grads = gradient_sequence(p0.shape, 4)
    p = param(p0, device)
    opt = SGD([p], lr=0.05, **options)
    for g in grads:
        set_grad(p, g)
        opt.step()
    numpy.testing.assert_allclose(host(p), sgd_reference(p0, grads, 0.05, **options), rtol=1e-14)


def test_sgd_keeps_float32(device):
    p = param([1.0, 2.0], device, numpy.float32)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    for _ in range(2):
        set_grad(p, [0.5, -0.5])
        opt.step()
    assert p.dtype == numpy.float32
    assert opt.state[p]["momentum_buffer"].dtype == numpy.float32


# ----------------------------------------------------------------------- Adam

def test_adam_two_steps_by_hand(device):
    lr, (b1, b2), eps, wd = 0.01, (0.9, 0.99), 1e-8, 0.1
    p0, g1, g2 = numpy.array([1.0, -0.5]), numpy.array([0.2, -0.4]), numpy.array([-0.1, 0.3])
    p = param(p0, device)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    expected, m, v = p0.copy(), 0.0, 0.0
    for t, g in enumerate((g1, g2), start=1):
        set_grad(p, g)
        opt.step()
        g = g + wd * expected
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        expected = expected - lr * m_hat / (numpy.sqrt(v_hat) + eps)
        numpy.testing.assert_allclose(host(p), expected, rtol=1e-13)
    assert opt.state[p]["step"] == 2
    numpy.testing.assert_allclose(host(opt.state[p]["exp_avg"]), m, rtol=1e-13)
    numpy.testing.assert_allclose(host(opt.state[p]["exp_avg_sq"]), v, rtol=1e-13)


def test_adam_first_step_moves_by_lr():
    # with bias correction the first step is lr * g / (|g| + eps), about lr * sign(g)
    p = param([0.0, 0.0], "cpu")
    opt = Adam([p], lr=0.1)
    set_grad(p, [3.0, -1e-3])
    opt.step()
    numpy.testing.assert_allclose(host(p), [-0.1, 0.1], rtol=1e-4)


def test_adamw_decouples_weight_decay(device):
    lr, wd = 0.1, 0.5
    p = param([2.0, -1.0], device)
    q = param([2.0, -1.0], device)
    adamw, adam = AdamW([p], lr=lr, weight_decay=wd), Adam([q], lr=lr)
    set_grad(p, [0.3, 0.3])
    set_grad(q, [0.3, 0.3])
    adamw.step()
    adam.step()
    # AdamW = shrink by (1 - lr * wd), then the plain Adam step
    numpy.testing.assert_allclose(host(p), host(q) - lr * wd * numpy.array([2.0, -1.0]),
                                  rtol=1e-14)
    assert AdamW([param([1.0], device)]).param_groups[0]["weight_decay"] == 1e-2


# ----------------------------------------------------------------------- groups

def test_param_groups_have_their_own_lr_and_weight_decay(device):
    a, b = param([1.0, 1.0], device), param([1.0, 1.0], device)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 0.1}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["weight_decay"] == 0.0
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.0
    set_grad(a, [1.0, 0.0])
    set_grad(b, [1.0, 0.0])
    opt.step()
    numpy.testing.assert_allclose(host(a), [0.9, 1.0], rtol=1e-15)
    numpy.testing.assert_allclose(host(b), [1 - 0.5 * 1.1, 1 - 0.5 * 0.1], rtol=1e-15)


def test_weight_decay_groups_skip_biases_and_batch_norm(device):
    weight, bias = param(numpy.ones((2, 3)), device), param([1.0, 1.0], device)
    gamma, beta = param([1.0, 1.0], device), param([0.5, 0.5], device)
    named = [("fc.weight", weight), ("fc.bias", bias), ("bn.gamma", gamma), ("bn.beta", beta)]
    groups = weight_decay_groups(named, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [id(p) for p in groups[0]["params"]] == [id(weight)]
    assert [id(p) for p in groups[1]["params"]] == [id(bias), id(gamma), id(beta)]
    assert [id(p) for p in weight_decay_groups([weight, bias], 0.1)[1]["params"]] == [id(bias)]
    opt = SGD(groups, lr=1.0, momentum=0.9)
    for p in (weight, bias, gamma, beta):
        set_grad(p, numpy.zeros(p.shape))
    opt.step()                   # zero gradients: only weight decay moves anything
    numpy.testing.assert_allclose(host(weight), numpy.full((2, 3), 0.9), rtol=1e-15)
    for p, value in ((bias, 1.0), (gamma, 1.0), (beta, 0.5)):
        numpy.testing.assert_array_equal(host(p), [value, value])


def test_parameters_without_grad_are_skipped(device):
    a, b = param([1.0], device), param([1.0], device)
    opt = Adam([a, b], lr=0.1)
    set_grad(a, [1.0])
    opt.step()
    numpy.testing.assert_array_equal(host(b), [1.0])
    assert b not in opt.state and opt.state[a]["step"] == 1


def test_zero_grad_sets_none():
    a = param([1.0], "cpu")
    (a * 2.0).sum().backward()
    opt = SGD([a], lr=0.1)
    opt.zero_grad()
    assert a.grad is None


def test_gradient_of_the_wrong_shape_or_dtype_is_an_error():
    a = param([1.0, 2.0], "cpu", numpy.float32)
    opt = SGD([a], lr=0.1)
    a.grad = numpy.ones(1, dtype=numpy.float32)
    with pytest.raises(ValueError, match=r"a parameter of shape \(2,\) and dtype float32 has a "
                                         r"gradient of shape \(1,\) and dtype float32"):
        opt.step()
    a.grad = numpy.ones(2)
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\) and dtype float64"):
        opt.step()


# ----------------------------------------------------------------------- devices

@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
    lambda ps: Adam(ps, lr=0.1, weight_decay=1e-2),
    lambda ps: AdamW(ps, lr=0.1),
])
def test_step_copies_nothing_between_host_and_device(fake_gpu, make):
    p = param(numpy.ones((3, 2)), "cuda", numpy.float32)
    opt = make([p])
    set_grad(p, numpy.full((3, 2), 0.5))
    fake_gpu.reset_transfers()
    for _ in range(3):
        opt.step()
    assert fake_gpu.transfers == {"to_device": 0, "to_host": 0}
    assert p.device == "cuda:0" and p.dtype == numpy.float32
    for value in opt.state[p].values():
        if not isinstance(value, int):
            assert backend.device_of(value) == "cuda:0" and value.dtype == numpy.float32


def test_step_on_second_device(fake_gpu):
    p = param([1.0, 2.0], "cuda:1")
    opt = Adam([p], lr=0.1)
    set_grad(p, [1.0, 1.0])
    opt.step()
    assert backend.device_of(opt.state[p]["exp_avg"]) == "cuda:1"
    numpy.testing.assert_allclose(host(p), [0.9, 1.9], rtol=1e-6)


# ----------------------------------------------------------------------- state dicts

OPTIMIZERS = {
    "sgd_nesterov": lambda ps: SGD(weight_decay_groups(ps, 1e-2), lr=0.1, momentum=0.9,
                                   nesterov=True),
    "sgd_dampening": lambda ps: SGD(ps, lr=0.1, momentum=0.5, dampening=0.2),
    "adam": lambda ps: Adam(weight_decay_groups(ps, 1e-2), lr=0.05),
    "adamw": lambda ps: AdamW(ps, lr=0.05),
}


def _train(params, opt, schedule, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            set_grad(p, g)
        opt.step()
        schedule.step()


def _schedule(opt):
    return SequentialLR(opt, [LinearWarmup(opt, 2, 0.1), CosineAnnealingLR(opt, 5)], [2])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resume_from_state_dict_is_bit_identical(device, name):
    rng = numpy.random.default_rng(3)
    start = [rng.normal(size=(3, 2)), rng.normal(size=(2,)), rng.normal(size=(4, 1, 2))]
    grads = [[rng.normal(size=s.shape) for s in start] for _ in range(6)]
    make = OPTIMIZERS[name]

    straight = [param(s, device) for s in start]
    opt = make(straight)
    _train(straight, opt, _schedule(opt), grads)

    first = [param(s, device) for s in start]
    opt = make(first)
    schedule = _schedule(opt)
    _train(first, opt, schedule, grads[:3])
    checkpoint = pickle.loads(pickle.dumps({
        "params": [p.numpy() for p in first], "opt": opt.state_dict(),
        "schedule": schedule.state_dict()}))

    resumed = [param(s, device) for s in checkpoint["params"]]
    opt = make(resumed)
    schedule = _schedule(opt)
    opt.load_state_dict(checkpoint["opt"])
    schedule.load_state_dict(checkpoint["schedule"])
    _train(resumed, opt, schedule, grads[3:])
    for a, b in zip(straight, resumed):
        numpy.testing.assert_array_equal(host(a), host(b))


def test_state_dict_is_a_host_snapshot(device):
    p = param([1.0, 2.0], device)
    opt = SGD([p], lr=0.1, momentum=0.9)
    set_grad(p, [1.0, 1.0])
    opt.step()
    saved = opt.state_dict()
    assert saved["param_groups"] == [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                                      "weight_decay": 0.0, "nesterov": False, "params": [0]}]
    buffer = saved["state"][0]["momentum_buffer"]
    assert type(buffer) is numpy.ndarray
    opt.step()
    numpy.testing.assert_array_equal(buffer, [1.0, 1.0])     # later steps do not alias it
    opt.load_state_dict(saved)
    opt.step()
    numpy.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], [1.0, 1.0])


def test_load_moves_state_to_parameter_device_and_dtype(fake_gpu):
    p = param([1.0, 2.0], "cpu")
    opt = Adam([p], lr=0.1)
    set_grad(p, [1.0, 1.0])
    opt.step()
    saved = opt.state_dict()
    q = param([1.0, 2.0], "cuda:1", numpy.float32)
    other = Adam([q], lr=0.5)
    other.load_state_dict(saved)
    assert other.param_groups[0]["lr"] == 0.1
    state = other.state[q]
    assert state["step"] == 1
    for key in ("exp_avg", "exp_avg_sq"):
        assert backend.device_of(state[key]) == "cuda:1" and state[key].dtype == numpy.float32
        numpy.testing.assert_allclose(host(state[key]), saved["state"][0][key], rtol=1e-6)


def _stepped(opt):
    for group in opt.param_groups:
        for p in group["params"]:
            set_grad(p, numpy.ones(p.shape))
    opt.step()
    return opt


def test_load_state_dict_errors():
    a, b = param(numpy.ones((2, 2)), "cpu"), param([1.0], "cpu")
    saved = _stepped(SGD([a, b], lr=0.1, momentum=0.9)).state_dict()
    fresh = lambda: SGD([param(numpy.ones((2, 2)), "cpu"), param([1.0], "cpu")],  # noqa: E731
                        lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"state dict has 1 parameter group\(s\) but this "
                                         r"optimizer has 2"):
        SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"parameter group 0 has 2 parameter\(s\) in the state "
                                         r"dict but 1 in this optimizer"):
        SGD([a], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"state\[0\]\['momentum_buffer'\] has shape \(2, 2\) but "
                                         r"its parameter has shape \(3,\)"):
        SGD([param(numpy.ones(3), "cpu"), b], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"keys 'state' and 'param_groups'"):
        fresh().load_state_dict({"state": {}})
    adam = Adam([param(numpy.ones((2, 2)), "cpu"), param([1.0], "cpu")])
    adam_state = _stepped(adam).state_dict()
    with pytest.raises(ValueError, match=r"parameter group 0 of the state dict lacks "
                                         r"\['dampening', 'momentum', 'nesterov'\]"):
        fresh().load_state_dict(adam_state)
    mixed = {"state": adam_state["state"], "param_groups": saved["param_groups"]}
    with pytest.raises(ValueError, match=r"entries \['exp_avg', 'exp_avg_sq', 'step'\] that SGD "
                                         r"does not use"):
        fresh().load_state_dict(mixed)
    bad_lr = {"state": {}, "param_groups": [dict(saved["param_groups"][0], lr=-1.0)]}
    with pytest.raises(ValueError, match=r"^SGD: lr must be >= 0, got -1.0$"):
        fresh().load_state_dict(bad_lr)
    stray = {"state": {7: saved["state"][0]}, "param_groups": saved["param_groups"]}
    opt = fresh()
    with pytest.raises(ValueError, match=r"state for parameter 7, which no parameter group lists"):
        opt.load_state_dict(stray)
    assert opt.state == {} and opt.param_groups[0]["lr"] == 0.1     # a failed load changes nothing


# ----------------------------------------------------------------------- validation

def bad(make, error, message):
    """One bad hyper-parameter: ``make(params)`` raises ``error`` with exactly ``message``."""
    return pytest.param(make, error, message, id=message)


NAN = float("nan")
BAD_HYPERPARAMETERS = [
    bad(lambda ps: SGD(ps, lr=-0.1), ValueError, "SGD: lr must be >= 0, got -0.1"),
    bad(lambda ps: SGD(ps, lr=NAN), ValueError, "SGD: lr must be >= 0, got nan"),
    bad(lambda ps: SGD(ps, lr="0.1"), TypeError, "SGD: lr must be a real number, got '0.1'"),
    bad(lambda ps: SGD(ps, lr=True), TypeError, "SGD: lr must be a real number, got True"),
    bad(lambda ps: SGD(ps, lr=None), TypeError, "SGD: lr must be a real number, got None"),
    bad(lambda ps: SGD(ps, lr=0.1, momentum=-0.5), ValueError,
        "SGD: momentum must be >= 0, got -0.5"),
    bad(lambda ps: SGD(ps, lr=0.1, momentum=NAN), ValueError,
        "SGD: momentum must be >= 0, got nan"),
    bad(lambda ps: SGD(ps, lr=0.1, momentum=False), TypeError,
        "SGD: momentum must be a real number, got False"),
    bad(lambda ps: SGD(ps, lr=0.1, dampening=1.5), ValueError,
        "SGD: dampening must be in [0, 1], got 1.5"),
    bad(lambda ps: SGD(ps, lr=0.1, dampening=NAN), ValueError,
        "SGD: dampening must be in [0, 1], got nan"),
    bad(lambda ps: SGD(ps, lr=0.1, dampening="0"), TypeError,
        "SGD: dampening must be a real number, got '0'"),
    bad(lambda ps: SGD(ps, lr=0.1, weight_decay=-1), ValueError,
        "SGD: weight_decay must be >= 0, got -1"),
    bad(lambda ps: SGD(ps, lr=0.1, weight_decay=NAN), ValueError,
        "SGD: weight_decay must be >= 0, got nan"),
    bad(lambda ps: SGD(ps, lr=0.1, weight_decay=True), TypeError,
        "SGD: weight_decay must be a real number, got True"),
    bad(lambda ps: SGD(ps, lr=0.1, nesterov=True), ValueError,
        "SGD: nesterov=True requires momentum > 0 and dampening = 0, got momentum=0.0 and "
        "dampening=0.0"),
    bad(lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
        "SGD: nesterov=True requires momentum > 0 and dampening = 0, got momentum=0.9 and "
        "dampening=0.1"),
    bad(lambda ps: SGD(ps, lr=0.1, nesterov=1), TypeError,
        "SGD: nesterov must be True or False, got 1"),
    bad(lambda ps: SGD([{"params": ps, "lr": -1.0}], lr=0.1), ValueError,
        "SGD: lr must be >= 0, got -1.0"),
    bad(lambda ps: Adam(ps, lr=-1e-3), ValueError, "Adam: lr must be >= 0, got -0.001"),
    bad(lambda ps: Adam(ps, lr=NAN), ValueError, "Adam: lr must be >= 0, got nan"),
    bad(lambda ps: Adam(ps, lr="1e-3"), TypeError, "Adam: lr must be a real number, got '1e-3'"),
    bad(lambda ps: Adam(ps, eps=0.0), ValueError, "Adam: eps must be > 0, got 0.0"),
    bad(lambda ps: Adam(ps, eps=NAN), ValueError, "Adam: eps must be > 0, got nan"),
    bad(lambda ps: Adam(ps, eps=True), TypeError, "Adam: eps must be a real number, got True"),
    bad(lambda ps: Adam(ps, weight_decay=-1), ValueError,
        "Adam: weight_decay must be >= 0, got -1"),
    bad(lambda ps: Adam(ps, weight_decay=None), TypeError,
        "Adam: weight_decay must be a real number, got None"),
    bad(lambda ps: Adam(ps, betas=(1.0, 0.999)), ValueError,
        "Adam: betas[0] must be in [0, 1), got 1.0"),
    bad(lambda ps: Adam(ps, betas=(0.9, -0.1)), ValueError,
        "Adam: betas[1] must be in [0, 1), got -0.1"),
    bad(lambda ps: Adam(ps, betas=(NAN, 0.999)), ValueError,
        "Adam: betas[0] must be in [0, 1), got nan"),
    bad(lambda ps: Adam(ps, betas=(0.9, "0.999")), TypeError,
        "Adam: betas[1] must be a real number, got '0.999'"),
    bad(lambda ps: Adam(ps, betas=(False, 0.999)), TypeError,
        "Adam: betas[0] must be a real number, got False"),
    bad(lambda ps: Adam(ps, betas=0.9), TypeError,
        "Adam: betas must be a pair (beta1, beta2), got 0.9"),
    bad(lambda ps: Adam(ps, betas=(0.9, 0.99, 0.999)), TypeError,
        "Adam: betas must be a pair (beta1, beta2), got (0.9, 0.99, 0.999)"),
    bad(lambda ps: AdamW(ps, weight_decay=-0.01), ValueError,
        "AdamW: weight_decay must be >= 0, got -0.01"),
    bad(lambda ps: AdamW(ps, betas=(0.9, 1)), ValueError,
        "AdamW: betas[1] must be in [0, 1), got 1"),
]


@pytest.mark.parametrize("make, error, message", BAD_HYPERPARAMETERS)
def test_hyperparameter_validation(make, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        make([param([1.0], "cpu")])


def test_hyperparameters_are_stored_as_floats():
    sgd = SGD([param([1.0], "cpu")], lr=1, momentum=0, weight_decay=numpy.float32(0.5))
    group = sgd.param_groups[0]
    assert all(type(group[key]) is float for key in ("lr", "momentum", "dampening",
                                                      "weight_decay"))
    adam = Adam([param([1.0], "cpu")], betas=[0, numpy.float64(0.5)])
    assert adam.param_groups[0]["betas"] == (0.0, 0.5)
    assert all(type(beta) is float for beta in adam.param_groups[0]["betas"])


def test_parameter_validation():
    a = param([1.0], "cpu")
    with pytest.raises(TypeError, match=r"got a single Tensor; pass \[tensor\]"):
        SGD(a, lr=0.1)
    with pytest.raises(ValueError, match=r"optimizer got an empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"optimizer got an empty parameter list"):
        SGD(weight_decay_groups([], 0.1), lr=0.1)
    with pytest.raises(TypeError, match=r"can only optimize minidl Tensors, got ndarray"):
        SGD([numpy.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match=r"not a set"):
        SGD({a}, lr=0.1)
    with pytest.raises(ValueError, match=r"a parameter appears more than once"):
        SGD([a, a], lr=0.1)
    with pytest.raises(ValueError, match=r"a parameter appears more than once"):
        SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match=r"cannot optimize a non-leaf Tensor"):
        SGD([a * 2.0], lr=0.1)
    with pytest.raises(TypeError,
                       match=r"only floating-point tensors can be optimized, got dtype int64"):
        SGD([minidl.tensor([1, 2])], lr=0.1)
    with pytest.raises(ValueError, match=r"must have a 'params' entry"):
        SGD([{"lr": 0.1}], lr=0.1)


# ----------------------------------------------------------------------- PyTorch

TORCH_CASES = {
    "sgd": ("SGD", {"lr": 0.1}),
    "sgd_momentum_dampening_wd": ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2,
                                          "weight_decay": 1e-2}),
    "sgd_nesterov_wd": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True,
                                "weight_decay": 5e-4}),
    "adam": ("Adam", {"lr": 0.01}),
    "adam_wd": ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    "adamw": ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_trajectory_matches_torch(device, case):
    torch = pytest.importorskip("torch")
    name, options = TORCH_CASES[case]
    rng = numpy.random.default_rng(7)
    start = [rng.normal(size=(4, 3)), rng.normal(size=(3,))]
    ours = [param(s, device) for s in start]
    theirs = [torch.tensor(s, requires_grad=True) for s in start]
    opt = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}[name](ours, **options)
    torch_opt = getattr(torch.optim, name)(theirs, **options)
    for _ in range(8):
        for p, t in zip(ours, theirs):
            # each side's gradient depends on its own parameter: a real trajectory
            noise = rng.normal(size=t.shape)
            set_grad(p, numpy.sin(3 * host(p)) + noise)
            t.grad = torch.sin(3 * t.detach()) + torch.tensor(noise)
        opt.step()
        torch_opt.step()
    for p, t in zip(ours, theirs):
        numpy.testing.assert_allclose(host(p), t.detach().numpy(), rtol=1e-7, atol=1e-12)


def test_zero_grad_sets_none_or_zeros_in_place():
    p = minidl.tensor(numpy.ones(3), requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = numpy.full(3, 2.0)
    kept = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is kept and not p.grad.any()
    opt.zero_grad()
    assert p.grad is None


def trained_sgd(device, steps=2):
    params = [param(numpy.ones(s), device) for s in ((3,), (2, 2), (4,))]
    opt = SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    for step in range(steps):
        for p in params:
            set_grad(p, numpy.full(p.shape, step + 1.0))
        opt.step()
    return opt


OPTIMIZER_DAMAGE = {
    "last state of another shape": (lambda s: s["state"][2].update(momentum_buffer=numpy.ones(5)),
                                    r"state\[2\]\['momentum_buffer'\] has shape \(5,\)"),
    "last state of strings": (lambda s: s["state"][2].update(
        momentum_buffer=numpy.array(["a"] * 4)), r"has dtype <U1"),
    "an unknown state entry": (lambda s: s["state"][1].update(exp_avg=numpy.ones((2, 2))),
                               r"entries \['exp_avg'\] that SGD does not use"),
    "state of no parameter": (lambda s: s["state"].update({7: {}}), r"parameter 7, which no"),
    "state not a dict": (lambda s: s["state"].update({0: [1]}), r"state of parameter 0 is a "
                                                               r"list"),
    "a bad second group": (lambda s: s["param_groups"][1].update(lr=-1.0),
                           r"SGD: lr must be >= 0, got -1.0"),
    "a group without params": (lambda s: s["param_groups"][1].pop("params"),
                               r"group 1 of the state dict is not a dict with a list"),
    "groups not a list": (lambda s: s.update(param_groups="x"), r"a list of 'param_groups'"),
}


@pytest.mark.parametrize("case", OPTIMIZER_DAMAGE)
def test_a_bad_optimizer_state_dict_changes_nothing(device, case):
    change, message = OPTIMIZER_DAMAGE[case]
    saved = trained_sgd(device, steps=3).state_dict()
    change(saved)
    opt = trained_sgd(device)
    before = pickle.dumps(opt.state_dict())
    with pytest.raises((ValueError, TypeError), match=message):
        opt.load_state_dict(saved)
    assert pickle.dumps(opt.state_dict()) == before


def test_a_bad_child_of_a_sequential_schedule_changes_none_of_them():
    p = param(numpy.ones(2), "cpu")
    opt = SGD([p], lr=1.0)

    def schedule():
        warmup, cosine = LinearWarmup(opt, warmup_steps=2), CosineAnnealingLR(opt, T_max=8)
        return SequentialLR(opt, [warmup, cosine], milestones=[2])

    source = schedule()
    for _ in range(5):
        source.step()
    saved = source.state_dict()
    saved["schedulers"][1]["T_max"] = "8"
    target = schedule()
    before = pickle.dumps(target.state_dict())
    with pytest.raises(ValueError, match=r"CosineAnnealingLR state dict: 'T_max' is '8', "
                                         r"expected a number"):
        target.load_state_dict(saved)
    assert pickle.dumps(target.state_dict()) == before
