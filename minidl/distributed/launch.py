"""Starting n processes under ``mpirun``: the command line, found and flagged for this machine.

``minidl train ... --nproc 2`` and the MPI tests use it.  The ``dist`` extra
installs Open MPI's ``mpirun`` beside the Python executable (the
environment's ``bin/``), so that one is preferred to any other on ``PATH``.
Open MPI refuses to run as root without ``--allow-run-as-root``, and refuses
more processes than cores without ``--oversubscribe``; both are added for it.
"""
import os
import shutil
import subprocess
import sys

from .comm import DIST_EXTRA_HINT

__all__ = ["find_mpirun", "mpirun_command", "worker_environment"]


def find_mpirun():
    """The path of ``mpirun``: beside ``sys.executable``, else on PATH; else an error."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpirun")
    path = beside if os.access(beside, os.X_OK) else shutil.which("mpirun")
    if path is None:
        raise RuntimeError(f"mpirun was not found beside {sys.executable} nor on PATH; "
                           f"{DIST_EXTRA_HINT}")
    return path


def _is_open_mpi(mpirun):
    try:
        text = subprocess.run([mpirun, "--version"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Open MPI" in text or "OpenRTE" in text or "PRRTE" in text


def mpirun_command(nproc, argv):
    """``[mpirun, -n, nproc, flags..., *argv]`` for running ``argv`` in ``nproc`` processes."""
    mpirun = find_mpirun()
    command = [mpirun, "-n", str(nproc)]
    if _is_open_mpi(mpirun):
        command.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-run-as-root")
    return command + list(argv)


def worker_environment(nproc, environ=None):
    """``environ`` (default os.environ) with BLAS threads split between the processes.

    n processes that each start one BLAS thread per core fight over the
    cores (runs get several times slower); a thread count already set is kept.
    """
    env = dict(os.environ if environ is None else environ)
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, threads)
    return env
