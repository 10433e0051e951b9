"""gdlab's entry points: thin Click commands around ``core`` that log to MLflow."""

import atexit
import gc

# Registered first, so it runs last at exit: the garbage collector then skips every object
# alive at that point. Tearing down the heap of a process that imported MLflow (and
# matplotlib) otherwise costs 1-2.5 s here after the work is done; atexit handlers and file
# flushing still run as usual.
atexit.register(gc.freeze)
