"""Each thread's time, split per operation (Linux).

Time running comes from each thread's CPU-time clock (`clock_gettime`), exact at any
moment; `/proc/self/task/*/schedstat`'s own running time is brought up to date only at the
scheduler's ticks and switches, milliseconds off for a thread that runs on, which matters
in a phase of a few milliseconds. Time waiting for a CPU comes from schedstat, which
updates it whenever the thread gets a CPU. Shared by `bridge_cost.py` and `get_phase.py`. kadmium's runtime threads are named
`kadmium-rt`; any other implementation's show up as neither Python nor runtime.
"""
import os
import threading
import time


def cpu_clock_ns(tid):
    """CPU time of thread `tid` of this process, in ns (Linux's MAKE_THREAD_CPUCLOCK of
    CPUCLOCK_SCHED: the clock `pthread_getcpuclockid` would give)."""
    return time.clock_gettime_ns(((~tid) << 3) | 6)


def thread_times(caller_last=False):
    """{thread id: (name, ns running, ns waiting for a CPU)} of this process's threads.

    Reading them takes some tens of microseconds. Before an interval, pass
    `caller_last=True`; after it, leave the default (caller first). The calling thread's
    own CPU clock is read at the very end of the call before an interval and at the very
    start after one, so listing and reading the others (files opened by this very thread)
    falls outside its share of the interval."""
    me = threading.get_native_id()
    my_running = None if caller_last else cpu_clock_ns(me)
    times = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                _, waiting, _ = map(int, f.read().split())
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            running = my_running if tid == me else cpu_clock_ns(tid)
        except OSError:  # the thread ended meanwhile (EINVAL from its clock, too)
            continue
        times[tid] = (name, running, waiting)
    if caller_last and me in times:
        name, _, waiting = times[me]
        times[me] = (name, cpu_clock_ns(me), waiting)
    return times


def split_per_call(before, after, calls, wall_s):
    """Microseconds per call: the Python thread's running / waiting / asleep, and the
    runtime threads' running and waiting (summed over them)."""
    me = threading.get_native_id()
    out = {"runtime_running_us": 0.0, "runtime_waiting_us": 0.0}
    for tid, (name, running, waiting) in after.items():
        if tid not in before:
            continue
        run_us = (running - before[tid][1]) / 1e3 / calls
        wait_us = (waiting - before[tid][2]) / 1e3 / calls
        if tid == me:
            out["python_running_us"] = round(run_us, 1)
            out["python_waiting_for_cpu_us"] = round(wait_us, 1)
            out["python_asleep_us"] = round(wall_s * 1e6 / calls - run_us - wait_us, 1)
        elif name == "kadmium-rt":
            out["runtime_running_us"] += run_us
            out["runtime_waiting_us"] += wait_us
    out["runtime_running_us"] = round(out["runtime_running_us"], 1)
    out["runtime_waiting_us"] = round(out["runtime_waiting_us"], 1)
    return out
