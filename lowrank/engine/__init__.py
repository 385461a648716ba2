"""The engine: a sweep's members, how they execute, the run loop and its records.

* :mod:`~lowrank.engine.members`: the member grid, compile groups, the rows of a group;
* :mod:`~lowrank.engine.execution`: vmap/loop × scan/host behind one interface; mesh,
  sharding, hosts;
* :mod:`~lowrank.engine.group`: one compile group's compiled functions and device state;
* :mod:`~lowrank.engine.run`: :func:`run`, the loop train → evaluate → measure → write →
  checkpoint;
* :mod:`~lowrank.engine.records`: host metrics → per-member records; the summary table;
* :mod:`~lowrank.engine.preemption`: SIGTERM/SIGUSR1 → checkpoint and a distinct exit.
"""

from lowrank.engine.execution import (
    OverMembers,
    cpu_cores,
    epoch_function,
    epoch_loop_mode,
    initialize_hosts,
    loop_threads,
    member_mesh,
    to_host,
    vectorize_mode,
)
from lowrank.engine.group import Group
from lowrank.engine.members import Member, Roster, members
from lowrank.engine.preemption import EXIT_PREEMPTED, Preempted
from lowrank.engine.run import final_state, run

__all__ = [
    "EXIT_PREEMPTED",
    "Group",
    "Member",
    "OverMembers",
    "Preempted",
    "Roster",
    "cpu_cores",
    "epoch_function",
    "epoch_loop_mode",
    "final_state",
    "initialize_hosts",
    "loop_threads",
    "member_mesh",
    "members",
    "run",
    "to_host",
    "vectorize_mode",
]
