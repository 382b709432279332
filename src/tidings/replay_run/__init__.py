"""Carrying a replay out: the flow-test sandbox its events run in (sandbox.py), the chunks
under a lease (runner.py) and the child process a worker starts for it (child.py). Above
tidings.flowtest, which it runs; tidings.replay (stored replays, their queue and processes)
stays below the job engine."""
