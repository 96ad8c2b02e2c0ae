import os

# The tests' producers point at closed ports (127.0.0.1:9): the interpreter's exit must not spend the
# default exit flush deadline on each of them. Tests of the exit flush pass their own deadlines.
os.environ.setdefault("STEMTRACE_EXIT_FLUSH_S", "0")
