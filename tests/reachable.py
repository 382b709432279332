"""Exit 0 when a TCP port answers: `python tests/reachable.py HOST PORT`."""

import socket
import sys

try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
