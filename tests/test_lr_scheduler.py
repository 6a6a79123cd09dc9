"""Learning-rate schedules: closed forms, sequences, state dicts, validation, PyTorch."""
import math
import pickle
import warnings

import numpy
import pytest

import minidl
from minidl.optim.adam import Adam
from minidl.optim.lr_scheduler import (CosineAnnealingLR, LinearWarmup, MultiStepLR,
                                       SequentialLR, StepLR)
from minidl.optim.sgd import SGD

BASE_LRS = (0.1, 0.5)
NAN = float("nan")


def optimizer():
    """SGD with two groups of different base rates, so every schedule is checked per group."""
    a = minidl.tensor(numpy.zeros(2), requires_grad=True)
    b = minidl.tensor(numpy.zeros(1), requires_grad=True)
    return SGD([{"params": [a]}, {"params": [b], "lr": BASE_LRS[1]}], lr=BASE_LRS[0])


def trace(schedule, steps):
    """The rates of both groups at steps 0..steps, as set in the optimizer."""
    rates = [[g["lr"] for g in schedule.optimizer.param_groups]]
    for _ in range(steps):
        schedule.step()
        assert schedule.get_last_lr() == [g["lr"] for g in schedule.optimizer.param_groups]
        rates.append(schedule.get_last_lr())
    return numpy.array(rates)


def closed_form(f, steps):
    return numpy.array([[f(base, t) for base in BASE_LRS] for t in range(steps + 1)])


def cosine(base, t, t_max, eta_min=0.0):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def warmup(base, t, steps, start):
    return base * (start + (1 - start) * min(t, steps) / steps)


SCHEDULES = {
    "step": (lambda opt: StepLR(opt, step_size=3, gamma=0.5),
             lambda base, t: base * 0.5 ** (t // 3)),
    "multistep": (lambda opt: MultiStepLR(opt, milestones=[7, 2, 4], gamma=0.1),
                  lambda base, t: base * 0.1 ** sum(t >= m for m in (2, 4, 7))),
    "cosine": (lambda opt: CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
               lambda base, t: cosine(base, t, 10, 0.001)),
    "warmup": (lambda opt: LinearWarmup(opt, warmup_steps=4, start_factor=0.25),
               lambda base, t: warmup(base, t, 4, 0.25)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_follows_closed_form(name):
    make, formula = SCHEDULES[name]
    schedule = make(optimizer())
    rates = trace(schedule, 15)
    numpy.testing.assert_allclose(rates, closed_form(formula, 15), rtol=1e-15)
    assert schedule.last_epoch == 15
    assert [g["initial_lr"] for g in schedule.optimizer.param_groups] == list(BASE_LRS)
    numpy.testing.assert_allclose(schedule.lr_at(20), [formula(b, 20) for b in BASE_LRS],
                                  rtol=1e-15)


def test_specific_values():
    opt = optimizer()
    schedule = CosineAnnealingLR(opt, T_max=4)
    rates = trace(schedule, 4)[:, 0]
    numpy.testing.assert_allclose(rates, [0.1, 0.1 * (2 + 2 ** 0.5) / 4, 0.05,
                                          0.1 * (2 - 2 ** 0.5) / 4, 0.0], atol=1e-17)
    rates = trace(LinearWarmup(optimizer(), warmup_steps=2, start_factor=0.5), 3)[:, 1]
    numpy.testing.assert_allclose(rates, [0.25, 0.375, 0.5, 0.5], rtol=1e-15)


def test_warmup_then_cosine():
    opt = optimizer()
    schedule = SequentialLR(opt, [LinearWarmup(opt, warmup_steps=3, start_factor=0.1),
                                  CosineAnnealingLR(opt, T_max=6)], milestones=[3])
    rates = trace(schedule, 9)
    expected = closed_form(lambda base, t: warmup(base, t, 3, 0.1) if t < 3
                           else cosine(base, t - 3, 6), 9)
    numpy.testing.assert_allclose(rates, expected, rtol=1e-15, atol=1e-18)
    assert rates[3, 0] == 0.1 and rates[9, 0] == 0.0     # peak after warm-up, eta_min at the end


def test_three_schedules_in_sequence():
    opt = optimizer()
    schedule = SequentialLR(opt, [LinearWarmup(opt, 2), StepLR(opt, 2, 0.5),
                                  CosineAnnealingLR(opt, 3)], milestones=[2, 6])
    rates = trace(schedule, 9)[:, 0]
    expected = [0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.05, 0.05] + [cosine(0.1, t, 3) for t in range(4)]
    numpy.testing.assert_allclose(rates, expected, rtol=1e-15, atol=1e-18)


def test_scheduler_keeps_initial_lr_of_an_earlier_scheduler():
    opt = optimizer()
    StepLR(opt, step_size=1, gamma=0.5).step()          # lr is now half the base
    schedule = CosineAnnealingLR(opt, T_max=2)
    assert schedule.base_lrs == list(BASE_LRS) and schedule.get_last_lr() == list(BASE_LRS)


@pytest.mark.parametrize("name", sorted(SCHEDULES) + ["sequential"])
def test_state_dict_resumes_exactly(name):
    def build(opt):
        if name == "sequential":
            return SequentialLR(opt, [LinearWarmup(opt, 3, 0.1), CosineAnnealingLR(opt, 7)], [3])
        return SCHEDULES[name][0](opt)

    straight = trace(build(optimizer()), 12)
    opt = optimizer()
    first = build(opt)
    trace(first, 5)
    saved = pickle.loads(pickle.dumps((opt.state_dict(), first.state_dict())))
    opt = optimizer()
    resumed = build(opt)
    opt.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert resumed.last_epoch == 5
    numpy.testing.assert_array_equal(trace(resumed, 7), straight[5:])


def test_load_state_dict_sets_the_optimizer_rates_and_copies():
    opt = optimizer()
    schedule = StepLR(opt, step_size=1, gamma=0.5)
    schedule.step()
    saved = schedule.state_dict()
    assert saved == {"step_size": 1, "gamma": 0.5, "base_lrs": [0.1, 0.5], "last_epoch": 1,
                     "_last_lr": [0.05, 0.25]}
    other = StepLR(optimizer(), step_size=1, gamma=0.5)
    other.load_state_dict(saved)
    assert [g["lr"] for g in other.optimizer.param_groups] == [0.05, 0.25]
    other.step()
    assert saved["_last_lr"] == [0.05, 0.25] and saved["last_epoch"] == 1


def test_load_state_dict_errors():
    step_state = StepLR(optimizer(), step_size=2).state_dict()
    with pytest.raises(ValueError, match=r"this is not a CosineAnnealingLR state dict: expected "
                                         r"the keys \['T_max', '_last_lr', 'base_lrs', "
                                         r"'eta_min', 'last_epoch'\]"):
        CosineAnnealingLR(optimizer(), T_max=3).load_state_dict(step_state)
    single = SGD([minidl.tensor(numpy.zeros(1), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=r"2 base learning rate\(s\) but the optimizer has 1 "
                                         r"parameter group\(s\)"):
        StepLR(single, step_size=2).load_state_dict(step_state)
    opt = optimizer()
    two = SequentialLR(opt, [LinearWarmup(opt, 2), StepLR(opt, 2)], [2]).state_dict()
    opt = optimizer()
    three = SequentialLR(opt, [LinearWarmup(opt, 2), StepLR(opt, 2), StepLR(opt, 3)], [2, 4])
    with pytest.raises(ValueError, match=r"for a SequentialLR of 2 scheduler\(s\), this one has 3"):
        three.load_state_dict(two)


@pytest.mark.parametrize("make, error, message", [
    (lambda opt: StepLR(opt, step_size=0), ValueError, r"StepLR: step_size must be >= 1, got 0"),
    (lambda opt: StepLR(opt, step_size=2.5), TypeError,
     r"StepLR: step_size must be an integer, got 2.5"),
    (lambda opt: StepLR(opt, step_size=2, gamma=0), ValueError,
     r"StepLR: gamma must be > 0, got 0"),
    (lambda opt: MultiStepLR(opt, [3, -1]), ValueError,
     r"MultiStepLR: each milestone must be >= 0, got -1"),
    (lambda opt: CosineAnnealingLR(opt, T_max=0), ValueError,
     r"CosineAnnealingLR: T_max must be >= 1, got 0"),
    (lambda opt: CosineAnnealingLR(opt, T_max=5, eta_min=-1.0), ValueError,
     r"CosineAnnealingLR: eta_min must be >= 0, got -1.0"),
    (lambda opt: LinearWarmup(opt, warmup_steps=0), ValueError,
     r"LinearWarmup: warmup_steps must be >= 1, got 0"),
    (lambda opt: LinearWarmup(opt, 5, start_factor=0.0), ValueError,
     r"LinearWarmup: start_factor must be in \(0, 1\], got 0.0"),
    (lambda opt: LinearWarmup(opt, 5, start_factor="a"), TypeError,
     r"LinearWarmup: start_factor must be a real number, got 'a'"),
    (lambda opt: StepLR(opt, step_size=True), TypeError,
     r"StepLR: step_size must be an integer, got True"),
    (lambda opt: StepLR(opt, step_size=2, gamma=NAN), ValueError,
     r"StepLR: gamma must be > 0, got nan"),
    (lambda opt: StepLR(opt, step_size=2, gamma="0.1"), TypeError,
     r"StepLR: gamma must be a real number, got '0.1'"),
    (lambda opt: StepLR(opt, step_size=2, gamma=True), TypeError,
     r"StepLR: gamma must be a real number, got True"),
    (lambda opt: MultiStepLR(opt, [3, 5.0]), TypeError,
     r"MultiStepLR: each milestone must be an integer, got 5.0"),
    (lambda opt: MultiStepLR(opt, [False]), TypeError,
     r"MultiStepLR: each milestone must be an integer, got False"),
    (lambda opt: MultiStepLR(opt, [3], gamma=-0.5), ValueError,
     r"MultiStepLR: gamma must be > 0, got -0.5"),
    (lambda opt: MultiStepLR(opt, [3], gamma=NAN), ValueError,
     r"MultiStepLR: gamma must be > 0, got nan"),
    (lambda opt: CosineAnnealingLR(opt, T_max=5.0), TypeError,
     r"CosineAnnealingLR: T_max must be an integer, got 5.0"),
    (lambda opt: CosineAnnealingLR(opt, T_max=5, eta_min=NAN), ValueError,
     r"CosineAnnealingLR: eta_min must be >= 0, got nan"),
    (lambda opt: CosineAnnealingLR(opt, T_max=5, eta_min=None), TypeError,
     r"CosineAnnealingLR: eta_min must be a real number, got None"),
    (lambda opt: LinearWarmup(opt, warmup_steps="5"), TypeError,
     r"LinearWarmup: warmup_steps must be an integer, got '5'"),
    (lambda opt: LinearWarmup(opt, 5, start_factor=1.5), ValueError,
     r"LinearWarmup: start_factor must be in \(0, 1\], got 1.5"),
    (lambda opt: LinearWarmup(opt, 5, start_factor=NAN), ValueError,
     r"LinearWarmup: start_factor must be in \(0, 1\], got nan"),
    (lambda opt: LinearWarmup(opt, 5, start_factor=True), TypeError,
     r"LinearWarmup: start_factor must be a real number, got True"),
    (lambda opt: SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], [0]), ValueError,
     r"SequentialLR: each milestone must be >= 1, got 0"),
    (lambda opt: SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], [2.0]), TypeError,
     r"SequentialLR: each milestone must be an integer, got 2.0"),
    (lambda opt: StepLR("sgd", step_size=2), TypeError,
     r"StepLR: optimizer must be a minidl.optim.Optimizer, got str"),
    (lambda opt: SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], [2, 4]), ValueError,
     r"SequentialLR: 2 scheduler\(s\) need 1 milestone\(s\), got 2"),
    (lambda opt: SequentialLR(opt, [StepLR(opt, 2)] * 3, [4, 4]), ValueError,
     r"SequentialLR: milestones must increase, got \[4, 4\]"),
    (lambda opt: SequentialLR(opt, [StepLR(opt, 2), StepLR(optimizer(), 3)], [2]), ValueError,
     r"every scheduler must be an LRScheduler built on the optimizer passed to SequentialLR"),
])
def test_argument_validation(make, error, message):
    with pytest.raises(error, match=message):
        make(optimizer())


def test_schedule_drives_adam_training():
    p = minidl.tensor(numpy.array([1.0]), requires_grad=True)
    opt = Adam([p], lr=0.1)
    schedule = StepLR(opt, step_size=1, gamma=0.5)
    moves = []
    for _ in range(3):
        before = p.numpy().copy()
        p.grad = numpy.array([1.0])
        opt.step()
        schedule.step()
        moves.append(float((before - p.numpy())[0]))
    # Adam with a constant gradient moves about lr per step: lr halves each step
    numpy.testing.assert_allclose(moves, [0.1, 0.05, 0.025], rtol=1e-6)


# ----------------------------------------------------------------------- PyTorch

TORCH_SCHEDULES = {
    "step": (lambda opt: StepLR(opt, 3, 0.5), lambda T, opt: T.StepLR(opt, 3, 0.5)),
    "multistep": (lambda opt: MultiStepLR(opt, [2, 4, 9], 0.3),
                  lambda T, opt: T.MultiStepLR(opt, [2, 4, 9], 0.3)),
    "cosine": (lambda opt: CosineAnnealingLR(opt, 10, 0.01),
               lambda T, opt: T.CosineAnnealingLR(opt, 10, 0.01)),
    "warmup": (lambda opt: LinearWarmup(opt, 5, 0.1), lambda T, opt: T.LinearLR(opt, 0.1, 1.0, 5)),
    "warmup_cosine": (
        lambda opt: SequentialLR(opt, [LinearWarmup(opt, 5, 0.1), CosineAnnealingLR(opt, 12)], [5]),
        lambda T, opt: T.SequentialLR(opt, [T.LinearLR(opt, 0.1, 1.0, 5),
                                            T.CosineAnnealingLR(opt, 12)], [5])),
}


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULES))
def test_schedule_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = TORCH_SCHEDULES[name]
    params = [torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)]
    torch_opt = torch.optim.SGD([{"params": [params[0]]},
                                 {"params": [params[1]], "lr": BASE_LRS[1]}], lr=BASE_LRS[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # PyTorch's SequentialLR warns about step(epoch)
        torch_schedule = theirs(torch.optim.lr_scheduler, torch_opt)
        expected = [torch_schedule.get_last_lr()]
        for _ in range(25):                   # past T_max: the cosine rises again in both
            torch_opt.step()
            torch_schedule.step()
            expected.append(torch_schedule.get_last_lr())
    numpy.testing.assert_allclose(trace(ours(optimizer()), 25), expected, rtol=1e-12, atol=1e-15)
