"""The dtype rule of docs/autograd.md, checked for every public op on int64 and bool tensors.

Each op either keeps the integer (or boolean) dtype, returns the dtype the
docs promise (``sum`` of booleans counts in int64, ``argmax`` is int64, the
comparisons are boolean), or refuses with a TypeError that names the op, the
argument and the dtype.  No op may turn an integer tensor into a float one.
"""
import numpy
import pytest

import minidl
import minidl.functional as F

KEEP = "keeps its dtype"
REFUSE = "refuses"


def _int_like(x):
    return minidl.tensor(numpy.ones(x.shape, x.dtype), device=x.device)


# name -> (call on a (2, 4, 3, 3) tensor x, rule for int64, rule for bool).  A rule is KEEP,
# REFUSE (the TypeError names the first tensor argument) or the dtype the result must have.
RULES = {
    "add": (lambda x: F.add(x, x), KEEP, REFUSE),
    "sub": (lambda x: F.sub(x, x), KEEP, REFUSE),
    "mul": (lambda x: F.mul(x, x), KEEP, REFUSE),
    "div": (lambda x: F.div(x, x), REFUSE, REFUSE),
    "neg": (lambda x: F.neg(x), KEEP, REFUSE),
    "pow": (lambda x: F.pow(x, x), KEEP, REFUSE),
    "matmul": (lambda x: F.matmul(x, x), KEEP, REFUSE),
    "exp": (lambda x: F.exp(x), REFUSE, REFUSE),
    "log": (lambda x: F.log(x), REFUSE, REFUSE),
    "sqrt": (lambda x: F.sqrt(x), REFUSE, REFUSE),
    "sum": (lambda x: F.sum(x, axis=1), KEEP, "int64"),
    "mean": (lambda x: F.mean(x), REFUSE, REFUSE),
    "max": (lambda x: F.max(x, axis=(2, 3)), KEEP, KEEP),
    "argmax": (lambda x: F.argmax(x, axis=1), "int64", "int64"),
    "reshape": (lambda x: F.reshape(x, -1), KEEP, KEEP),
    "flatten": (lambda x: F.flatten(x, 1), KEEP, KEEP),
    "squeeze": (lambda x: F.squeeze(x[:1]), KEEP, KEEP),
    "unsqueeze": (lambda x: F.unsqueeze(x, -1), KEEP, KEEP),
    "permute": (lambda x: F.permute(x, 3, 1, 2, 0), KEEP, KEEP),
    "transpose": (lambda x: F.transpose(x, 0, 1), KEEP, KEEP),
    "clone": (lambda x: F.clone(x), KEEP, KEEP),
    "getitem": (lambda x: F.getitem(x, (0, slice(1, 3))), KEEP, KEEP),
    "concatenate": (lambda x: F.concatenate([x, x], axis=1), KEEP, KEEP),
    "cat": (lambda x: F.cat([x, x], dim=1), KEEP, KEEP),
    "stack": (lambda x: F.stack([x, x]), KEEP, KEEP),
    "to": (lambda x: F.to(x, dtype="float32"), "float32", "float32"),
    "lt": (lambda x: F.lt(x, x), "bool", "bool"),
    "le": (lambda x: F.le(x, x), "bool", "bool"),
    "gt": (lambda x: F.gt(x, x), "bool", "bool"),
    "ge": (lambda x: F.ge(x, x), "bool", "bool"),
    "eq": (lambda x: F.eq(x, x), "bool", "bool"),
    "ne": (lambda x: F.ne(x, x), "bool", "bool"),
    "tanh": (lambda x: F.tanh(x), REFUSE, REFUSE),
    "sigmoid": (lambda x: F.sigmoid(x), REFUSE, REFUSE),
    "relu": (lambda x: F.relu(x), KEEP, REFUSE),
    "softmax": (lambda x: F.softmax(x, axis=1), REFUSE, REFUSE),
    "log_softmax": (lambda x: F.log_softmax(x, axis=1), REFUSE, REFUSE),
    "linear": (lambda x: F.linear(x, _int_like(x)[0, 0]), REFUSE, REFUSE),
    "conv2d": (lambda x: F.conv2d(x, _int_like(x)), REFUSE, REFUSE),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), REFUSE, REFUSE),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), REFUSE, REFUSE),
    "global_avg_pool2d": (lambda x: F.global_avg_pool2d(x), REFUSE, REFUSE),
    "batch_norm": (lambda x: F.batch_norm(x, None, None), REFUSE, REFUSE),
    "maxout": (lambda x: F.maxout(x, 2), KEEP, REFUSE),
    "dropout": (lambda x: F.dropout(x, 0.5), REFUSE, REFUSE),
    "cross_entropy": (lambda x: F.cross_entropy(F.reshape(x, 8, -1),
                                                minidl.tensor(numpy.zeros(8, int),
                                                              device=x.device)),
                      REFUSE, REFUSE),
    "nll_loss": (lambda x: F.nll_loss(F.reshape(x, 8, -1),
                                      minidl.tensor(numpy.zeros(8, int), device=x.device)),
                 REFUSE, REFUSE),
    "mse_loss": (lambda x: F.mse_loss(x, x), REFUSE, REFUSE),
}


def test_every_public_op_has_a_dtype_rule():
    assert sorted(RULES) == sorted(F.__all__)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
@pytest.mark.parametrize("name", sorted(RULES))
def test_integer_and_boolean_tensors(device, name, dtype):
    call, int_rule, bool_rule = RULES[name]
    rule = int_rule if dtype == "int64" else bool_rule
    values = numpy.arange(2 * 4 * 3 * 3).reshape(2, 4, 3, 3) % 3
    x = minidl.tensor(values.astype(dtype), device=device)
    if rule == REFUSE:
        kind = "floating-point" if dtype == "int64" else "(floating-point|numeric)"
        with pytest.raises(TypeError, match=rf"^{name}: \w+(\[0\])? must be a {kind} tensor, "
                                            rf"got dtype {dtype}; convert it explicitly"):
            call(x)
        return
    y = call(x)
    assert y.dtype == numpy.dtype(dtype if rule == KEEP else rule)
    assert not y.requires_grad


@pytest.mark.parametrize("make", [lambda d: minidl.tensor([1, 2], device=d) / 2,
                                  lambda d: minidl.tensor([True], device=d) + 1,
                                  lambda d: minidl.tensor([1, 2], device=d) * 0.5])
def test_numbers_never_promote_an_integer_tensor(device, make):
    with pytest.raises(TypeError, match=r"(must be a (floating-point|numeric) tensor|"
                                        r"operands have different dtypes)"):
        make(device)


def test_integer_tensors_cannot_require_gradients():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        minidl.tensor([1, 2], requires_grad=True)


# float16 is stored and moved, never computed in: these ops only move, compare or pick elements.
HALF_OK = {"max", "argmax", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose",
           "getitem", "concatenate", "cat", "stack", "clone", "to", "lt", "le", "gt", "ge", "eq",
           "ne"}


@pytest.mark.parametrize("name", sorted(RULES))
def test_float16_is_moved_but_never_computed_in(device, name):
    call, _, _ = RULES[name]
    values = numpy.arange(2 * 4 * 3 * 3).reshape(2, 4, 3, 3) % 3
    x = minidl.tensor(values.astype("float16"), device=device)
    if name not in HALF_OK:
        with pytest.raises(TypeError, match=rf"^{name}: \w+(\[0\])? has dtype float16, which "
                                            rf"minidl stores and moves but does not compute in"):
            call(x)
        return
    y = call(x)
    assert y.dtype in (numpy.float16, numpy.bool_, numpy.int64, numpy.float32)
