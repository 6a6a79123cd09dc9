"""The communicator: all-reduce (sum), broadcast and barrier over the processes of a run.

This module knows only the backend.  Everything above it (``DataParallel``,
``nn.SyncBatchNorm``, ``DistributedSampler``) asks :func:`get_communicator`
for the current one and calls its three collectives, so another transport
(NCCL through ``cupy.cuda.nccl``, CUDA-aware MPI) is one more subclass of
:class:`Communicator`.

* :class:`SingleProcess`: the fallback when a script is not launched by
  ``mpirun``; rank 0 of 1, every collective returns at once.
* :class:`MPICommunicator`: MPI through ``mpi4py`` (the ``dist`` extra).
  MPI sends host memory, so a device array is copied to the host, reduced
  and copied back: two counted copies per call on the fake GPU of the tests.

:func:`init` picks MPI when the process was started by ``mpirun`` (Open MPI,
MPICH and Intel MPI set environment variables that say so) and installs an
exception hook that aborts the whole run when one rank raises, so the others
do not wait forever in a collective.
"""
import os
import sys
import traceback

import numpy

from .. import backend

__all__ = ["Communicator", "SingleProcess", "MPICommunicator", "init", "is_initialized",
           "get_communicator", "rank", "world_size", "launched_by_mpi", "DIST_EXTRA_HINT"]

DIST_EXTRA_HINT = 'pip install "minidl[dist]" (mpi4py and Open MPI)'

# set by the launchers in every process they start: Open MPI, then MPICH / Intel MPI (PMI)
_MPI_ENVIRONMENT = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")


class Communicator:
    """The interface: ``rank``, ``size`` and three collectives on backend arrays.

    ``counts`` records the calls and the bytes all-reduced, for tests and
    benchmarks.  Subclasses implement ``_all_reduce``, ``_broadcast`` and
    ``barrier``.
    """

    rank, size = 0, 1

    def __init__(self):
        self.counts = {"all_reduce": 0, "broadcast": 0, "bytes": 0}

    def all_reduce(self, array):
        """Replace ``array`` (host or device, contiguous) by its sum over all processes."""
        self.counts["all_reduce"] += 1
        self.counts["bytes"] += array.nbytes
        self._all_reduce(array)
        return array

    def broadcast(self, array, root=0):
        """Overwrite ``array`` on every process with the one of process ``root``."""
        self.counts["broadcast"] += 1
        self._broadcast(array, root)
        return array

    def barrier(self):
        """Return once every process has called it."""
        raise NotImplementedError

    def _all_reduce(self, array):
        raise NotImplementedError

    def _broadcast(self, array, root):
        raise NotImplementedError


class SingleProcess(Communicator):
    """One process: the sum over all processes is the array itself."""

    def _all_reduce(self, array):
        pass

    def _broadcast(self, array, root):
        if root != 0:
            raise ValueError(f"broadcast: root must be 0 in a single process, got {root}")

    def barrier(self):
        pass


class MPICommunicator(Communicator):
    """Collectives of an mpi4py communicator (default ``MPI.COMM_WORLD``) on host buffers.

    ``comm`` may be any object with mpi4py's buffer API (``Allreduce(send,
    receive)`` summing, ``Bcast(buffer, root=)``, ``Barrier()``,
    ``Get_rank()``, ``Get_size()``).
    """

    def __init__(self, comm=None):
        super().__init__()
        if comm is None:
            comm = _import_mpi().COMM_WORLD
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def _all_reduce(self, array):
        # MPI reads and writes host memory: a device array makes the round trip
        total = numpy.empty(array.shape, array.dtype)
        self.comm.Allreduce(_host_buffer(array), total)
        _write_back(array, total)

    def _broadcast(self, array, root):
        host = _host_buffer(array)
        self.comm.Bcast(host, root=root)
        if host is not array:
            _write_back(array, host)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        """End every process of the run (MPI_Abort): what a rank that failed must do."""
        self.comm.Abort(code)


def _host_buffer(array):
    """A C-contiguous host array with ``array``'s values: ``array`` itself when it is one."""
    host = backend.to_numpy(array)
    return host if host.flags.c_contiguous else host.copy()


def _write_back(array, host):
    """Copy the host array ``host`` into ``array``, wherever ``array`` lives."""
    if backend.device_of(array).type == "cpu":
        array[...] = host
    else:
        array[...] = backend.to_device(host, backend.device_of(array))


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"minidl.distributed over MPI needs mpi4py ({exc}); "
                          f"{DIST_EXTRA_HINT}") from exc
    return MPI


# --------------------------------------------------------------------------- the current one

_current = None
_single = SingleProcess()     # what get_communicator() gives before init()


def launched_by_mpi():
    """True when this process was started by ``mpirun`` / ``mpiexec``."""
    return any(name in os.environ for name in _MPI_ENVIRONMENT)


def init(communicator=None):
    """Set up the run's communicator and return it.

    Without an argument: MPI (``MPI.COMM_WORLD``) when launched by ``mpirun``,
    else :class:`SingleProcess`.  Under MPI an uncaught exception on any rank
    prints its traceback, prefixed by the rank, and aborts every process.
    Calling it again returns the communicator already set up.
    """
    global _current
    if communicator is not None:
        _current = communicator
    elif _current is None:
        _current = MPICommunicator() if launched_by_mpi() else SingleProcess()
        if isinstance(_current, MPICommunicator):
            _install_abort_hook(_current)
    return _current


def _install_abort_hook(communicator):
    def abort_on_error(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write("".join(f"[rank {communicator.rank}] {line}\n"
                                 for line in text.rstrip("\n").split("\n")))
        sys.stderr.write(f"[rank {communicator.rank}] aborting all "
                         f"{communicator.size} processes\n")
        sys.stderr.flush()
        communicator.abort(1)

    sys.excepthook = abort_on_error


def is_initialized():
    """True once :func:`init` has run in this process."""
    return _current is not None


def get_communicator():
    """The communicator of :func:`init`, or a single-process one when init() was not called."""
    return _current if _current is not None else _single


def rank():
    """This process's index in the run, 0 .. world_size() - 1 (0 without init())."""
    return get_communicator().rank


def world_size():
    """The number of processes in the run (1 without init())."""
    return get_communicator().size
