"""The kernel's last step inside the grading container: run as root by the
grader, it hands the connection file to the submission's user, makes the
kernel the first to go when memory runs out, applies limits, drops to that
user for good and replaces itself with the kernel.

The container (no network, read-only root, memory, pids and CPU limits) is the
outer boundary; this adds a user of its own per submission. A fresh uid, not a
fixed account, because process limits count per uid across every container on
the host: one submission's fork bomb must not use up another's.

This file is run as a script (never imported by the grader) and uses only the
standard library, so nothing from the grader's package loads here.
Usage: python -I container_entry.py SPEC_JSON -- KERNEL_ARGV...
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

_PR_SET_NO_NEW_PRIVS = 38


def main() -> None:
    spec = json.loads(sys.argv[1])
    kernel = sys.argv[sys.argv.index("--") + 1 :]
    uid = gid = spec["uid"]

    connection_file = kernel[kernel.index("-f") + 1]
    os.chown(connection_file, uid, gid)
    with open("/proc/self/oom_score_adj", "w") as handle:  # the kernel dies first, never the grader
        handle.write("1000")

    limits = {
        resource.RLIMIT_CPU: (spec["cpu_seconds"], spec["cpu_seconds"] + 5),
        resource.RLIMIT_FSIZE: (spec["file_bytes"], spec["file_bytes"]),
        resource.RLIMIT_NOFILE: (1024, 1024),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_NPROC: (spec["processes"], spec["processes"]),
    }
    for kind, value in limits.items():
        resource.setrlimit(kind, value)

    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    os.chdir(spec["workdir"])
    os.execve(kernel[0], kernel, spec["env"])


if __name__ == "__main__":
    main()
