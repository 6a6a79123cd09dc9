"""A stand-in for CuPy that keeps "device memory" on the host, for tests without a GPU.

It offers the part of CuPy's API that minidl uses, with CuPy's strictness
made stricter, so device code paths can be exercised on any machine:

* its arrays (:class:`DeviceArray`) are not NumPy arrays: ``numpy.asarray``,
  NumPy functions and ufuncs refuse them, and they refuse host arrays as
  operands; so an op that calls NumPy on device data, or mixes host and
  device arrays, fails here as it would on a GPU;
* every copy between host and device is counted in :data:`transfers`, so a
  test can assert that a training step copies nothing to the host;
* it pretends to have two devices, so errors about arrays on two devices
  can be tested.

Plug it in with ``minidl.backend.set_gpu_module(fake_cupy)``.
"""
import types

import numpy

DEVICE_COUNT = 2
transfers = {"to_device": 0, "to_host": 0}
_current = [0]


def reset_transfers():
    transfers["to_device"] = transfers["to_host"] = 0


class _DeviceId:
    def __init__(self, id):
        self.id = id

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def _refuse_host(value, where):
    if isinstance(value, numpy.ndarray):
        raise TypeError(f"fake_cupy: {where} got a host numpy.ndarray (shape {value.shape}); "
                        f"device code must not mix host and device arrays")


def _unwrap(value, where, device):
    """DeviceArray -> its host buffer; check device ids agree and refuse host arrays."""
    if isinstance(value, DeviceArray):
        if device[0] is None:
            device[0] = value.device.id
        elif device[0] != value.device.id:
            raise ValueError(f"fake_cupy: {where} mixes arrays on devices {device[0]} and "
                             f"{value.device.id}")
        return value._host
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where, device) for v in value)
    _refuse_host(value, where)
    return value


def _wrap(value, device_id):
    if isinstance(value, numpy.generic):        # CuPy returns 0-d arrays, never scalars
        value = numpy.asarray(value)
    if isinstance(value, numpy.ndarray):
        return DeviceArray(value, device_id)
    if isinstance(value, tuple):
        return tuple(_wrap(v, device_id) for v in value)
    if isinstance(value, list):
        return [_wrap(v, device_id) for v in value]
    return value


def _call(fn, where, args, kwargs, device_id=None):
    """Run a NumPy callable on unwrapped arguments; results live on the arguments' device."""
    device = [device_id]
    args = [_unwrap(a, where, device) for a in args]
    kwargs = {k: _unwrap(v, where, device) for k, v in kwargs.items()}
    return _wrap(fn(*args, **kwargs), _current[0] if device[0] is None else device[0])


class DeviceArray:
    """An array in (pretend) device memory: a host buffer that NumPy may not touch."""

    __array_ufunc__ = None       # numpy.exp(device_array) -> TypeError; a + b uses our dunders

    def __init__(self, host, device_id):
        self._host = host
        self.device = _DeviceId(device_id)

    def __array__(self, *args, **kwargs):
        raise TypeError("fake_cupy: implicit conversion of a device array to a NumPy array is "
                        "not allowed; use asnumpy() (an explicit device-to-host copy)")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"fake_cupy: numpy.{func.__name__} was called on a device array; "
                        f"use the backend's array module")

    def __getattr__(self, name):
        if name.startswith("__"):      # e.g. __array_interface__: NumPy must not see the buffer
            raise AttributeError(name)
        attr = getattr(self._host, name)
        if name in ("item", "tolist"):
            transfers["to_host"] += 1
            return attr
        if callable(attr):
            return lambda *a, **k: _call(attr, f"ndarray.{name}", a, k, self.device.id)
        return _wrap(attr, self.device.id)

    def __getitem__(self, index):
        return _call(self._host.__getitem__, "__getitem__", (index,), {}, self.device.id)

    def __setitem__(self, index, value):
        _call(self._host.__setitem__, "__setitem__", (index, value), {}, self.device.id)

    def __len__(self):
        return len(self._host)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _to_host_scalar(self, convert):
        transfers["to_host"] += 1
        return convert(self._host)

    def __bool__(self):
        return self._to_host_scalar(bool)

    def __float__(self):
        return self._to_host_scalar(float)

    def __int__(self):
        return self._to_host_scalar(int)

    def __index__(self):
        return self._to_host_scalar(lambda h: h.__index__())

    def __repr__(self):
        return f"fake_cupy.array({self._host!r}, device={self.device.id})"


def _binary_dunder(name):
    def op(self, other):
        _refuse_host(other, f"ndarray.{name}")
        return _call(getattr(numpy.ndarray, name), f"ndarray.{name}", (self, other), {})
    return op


def _inplace_dunder(name):
    def op(self, other):
        _call(getattr(numpy.ndarray, name), f"ndarray.{name}", (self, other), {})
        return self
    return op


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lt", "le", "gt", "ge", "eq", "ne"):
    setattr(DeviceArray, f"__{_name}__", _binary_dunder(f"__{_name}__"))
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(DeviceArray, f"__r{_name}__", _binary_dunder(f"__r{_name}__"))
        setattr(DeviceArray, f"__i{_name}__", _inplace_dunder(f"__i{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_name}__",
            (lambda n: lambda self: _call(getattr(numpy.ndarray, n), n, (self,), {}))(f"__{_name}__"))
DeviceArray.__hash__ = None


class _Ufunc:
    """A NumPy ufunc working on device arrays (``add.at``, ``maximum.reduce``...)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, self._ufunc.__name__, args, kwargs)

    def __getattr__(self, name):
        method = getattr(self._ufunc, name)
        return lambda *a, **k: _call(method, f"{self._ufunc.__name__}.{name}", a, k)


class _Namespace(types.ModuleType):
    """NumPy's functions, taking and returning device arrays."""

    def __init__(self, source, name):
        super().__init__(name)
        self._source = source

    def __getattr__(self, name):
        attr = getattr(self._source, name)
        if isinstance(attr, numpy.ufunc):
            return _Ufunc(attr)
        if isinstance(attr, types.ModuleType):
            return _Namespace(attr, f"{self.__name__}.{name}")
        if isinstance(attr, type) or not callable(attr):
            return attr
        return lambda *a, **k: _call(attr, f"{self.__name__}.{name}", a, k)


class _Module(_Namespace):
    ndarray = DeviceArray

    def asarray(self, value, dtype=None):
        """Host data -> device (a counted copy); a device array is returned as it is."""
        if isinstance(value, DeviceArray):
            if value.device.id == _current[0]:
                return value if dtype is None else value.astype(dtype, copy=False)
            return DeviceArray(value._host.astype(dtype or value.dtype, copy=True), _current[0])
        transfers["to_device"] += 1
        return DeviceArray(numpy.array(value, dtype=dtype), _current[0])

    array = asarray

    def asnumpy(self, value):
        """Device -> host (a counted copy)."""
        if not isinstance(value, DeviceArray):
            return numpy.asarray(value)
        transfers["to_host"] += 1
        return value._host.copy()

    def is_available(self):
        return True

    def get_array_module(self, *arrays):
        return self if any(isinstance(a, DeviceArray) for a in arrays) else numpy


class _RandomState:
    def __init__(self, seed):
        self._rng = numpy.random.default_rng(seed)

    def random_sample(self, size=None, dtype=float):
        return DeviceArray(self._rng.random(size, dtype=numpy.dtype(dtype)), _current[0])

    def standard_normal(self, size=None, dtype=float):
        return DeviceArray(self._rng.standard_normal(size, dtype=numpy.dtype(dtype)), _current[0])


class _Device:
    """``cuda.Device(i)``: a context that makes ``i`` the current device."""

    def __init__(self, index=0):
        if not 0 <= index < DEVICE_COUNT:
            raise ValueError(f"fake_cupy: invalid device {index}")
        self.id = index

    def __enter__(self):
        self._previous, _current[0] = _current[0], self.id
        return self

    def __exit__(self, *exc):
        _current[0] = self._previous

    def synchronize(self):
        pass


fake_cupy = _Module(numpy, "fake_cupy")
fake_cupy.random = types.SimpleNamespace(RandomState=_RandomState)
fake_cupy.cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: DEVICE_COUNT))
