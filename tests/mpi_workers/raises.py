"""Run under ``mpirun -n 2``: rank 1 raises while rank 0 waits in a collective.

Without the abort hook of ``minidl.distributed.init`` rank 0 would wait forever.
"""
import minidl.distributed as dist

comm = dist.init()
if comm.rank == 1:
    raise ValueError("rank 1 failed on purpose")
comm.barrier()
print("rank 0 passed the barrier: the abort did not happen")
