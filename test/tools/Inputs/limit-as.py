"""Runs a command under an address-space limit: limit_as.py GIB CMD ARGS...
(the lit internal shell has no ulimit)."""
import os
import resource
import sys

limit = int(sys.argv[1]) << 30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
os.execvp(sys.argv[2], sys.argv[2:])
