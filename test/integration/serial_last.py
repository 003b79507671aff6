"""A pytest-xdist scheduler that runs the tests marked `serial` last,
alone.

make check runs the integration tests on several workers at once
(pytest -n N --dist loadgroup): most tests wait on servers, so the
machine's cores stay busy.  A test that measures latency or memory under
its own load is marked `@pytest.mark.serial`; conftest.py puts every such
test in the xdist group SERIAL_GROUP.  This scheduler hands out the other
tests as --dist loadgroup does and holds that group back until no worker
has a test left; then one worker runs the serial tests one after the
other while the rest wait.  One pytest session, so one summary line.
"""
from xdist.scheduler.loadgroup import LoadGroupScheduling

SERIAL_GROUP = "serial"


class SerialLastScheduling(LoadGroupScheduling):
    """--dist loadgroup, with the SERIAL_GROUP work unit run last and
    alone.

    A worker runs the last test it was sent only once it is sent more
    or told to shut down (it must know the next test), so the serial
    unit cannot wait for idle workers: once it is the only unit left,
    the first worker to ask for work is kept for it, every other worker
    is shut down when it asks, and the kept worker gets the unit when
    the others have all finished."""

    def __init__(self, config, log=None):
        super().__init__(config, log)
        self.serial_node = None

    def _assign_work_unit(self, node):
        """Gives node the next work unit; see the class comment for the
        serial unit, which stays last in the queue."""
        if SERIAL_GROUP not in self.workqueue:
            super()._assign_work_unit(node)
            return
        if len(self.workqueue) > 1:
            self.workqueue.move_to_end(SERIAL_GROUP)
            super()._assign_work_unit(node)
            return
        if self.serial_node is None:
            self.serial_node = node
        if node is not self.serial_node:
            node.shutdown()
        elif len(self.assigned_work) == 1:
            super()._assign_work_unit(node)

    def remove_node(self, node):
        """Forgets a finished (or crashed) worker; when the kept worker
        is the last one, it gets the serial unit."""
        crashitem = super().remove_node(node)
        if node is self.serial_node:
            self.serial_node = None
        elif (self.serial_node is not None
              and list(self.workqueue) == [SERIAL_GROUP]
              and list(self.assigned_work) == [self.serial_node]):
            self._assign_work_unit(self.serial_node)
        return crashitem
