"""Data-parallel training over MPI: one process per replica, as ChainerMN and Horovod do.

    import minidl.distributed as dist
    dist.init()                                  # MPI under mpirun, else one process
    model = dist.DataParallel(nn.SyncBatchNorm.convert(model))
    loader = DataLoader(data, 64 // dist.world_size(),
                        sampler=DistributedSampler(data, dist.world_size(), dist.rank()))

Launch with ``mpirun -n 4 python script.py`` (or ``minidl train ... --nproc 4``).
``comm`` (the communicator, knowing only the backend) sits below ``nn``;
``parallel`` (``DataParallel``) beside it.  See ``docs/distributed.md``.
"""
from .comm import (Communicator, MPICommunicator, SingleProcess, get_communicator, init,
                   is_initialized, launched_by_mpi, rank, world_size)
from .launch import find_mpirun, mpirun_command, worker_environment
from .parallel import (BUCKET_BYTES, DataParallel, all_reduce_gradients, broadcast_parameters,
                       gradient_buckets)

__all__ = ["Communicator", "MPICommunicator", "SingleProcess", "get_communicator", "init",
           "is_initialized", "launched_by_mpi", "rank", "world_size", "BUCKET_BYTES",
           "DataParallel", "all_reduce_gradients", "broadcast_parameters", "gradient_buckets",
           "find_mpirun", "mpirun_command", "worker_environment"]
