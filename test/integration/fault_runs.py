"""The runs of a fault-injection loop, the way SQLite tests itself: a
first run with nothing failing counts the operations (allocations,
reads, syncs...) a scenario makes; then a run with the Nth failing for
each N of stride(), until a run completes without reaching its fault.

    for run in fault_runs(most, first, start):
        arm(run.n)	# run.n is COUNT in the counting run
        ...
        if run.counting:
            run.counted = <operations the run made>
        else:
            run.hit = <whether the fault was injected>

A loop with a budget (make check) runs the first N and a stride over
the rest; with most 0 (long mode, make faults) every N.
"""

COUNT = 10 ** 9			# an N no run reaches: the counting run's


class FaultRun:
    """One run: its N, and what the caller found (counted, hit)."""

    def __init__(self, n):
        self.n = n
        self.counting = n == COUNT
        self.counted = None
        self.hit = False


def stride(total, most, first):
    """The N to fail for a scenario of total operations: every one when
    most is 0 or total small, else 1..first and a stride over the rest,
    most in all."""
    if most <= 0 or total <= most:
        return list(range(1, total + 1))
    first = min(first, most // 2)
    step = (total - first) / (most - first)
    return sorted(set(list(range(1, first + 1)) +
                      [first + 1 + int(i * step)
                       for i in range(most - first)]))


def fault_runs(most, first, start=1, until_missed=True):
    """Yields the counting run, then a run for each N of stride() from
    start on; ends after a run whose fault was not reached (with
    until_missed: the scenario completed without it)."""
    run = FaultRun(COUNT)
    yield run
    assert run.counted is not None, "the counting run counted nothing"
    for n in stride(run.counted, most, first):
        if n < start:
            continue
        run = FaultRun(n)
        yield run
        if until_missed and not run.hit:
            return
