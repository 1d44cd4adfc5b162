"""Hostile notebook cells, one per attack. Each binds `canary` to what it
achieved, so a test can tell "stopped" from "never tried".

`{hidden}`, `{solution}`, `{other}` and `{port}` are filled in by the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Base = Literal["solution", "template"]
Expect = Literal["full", "zero", "kernel-died"]


@dataclass(frozen=True)
class Attack:
    id: str
    code: str
    base: Base = "solution"  # the honest content the attack is added to
    expect: Expect = "full"  # what that honest content earns with the attack stopped
    blocked: str = ""  # a piece the canary must contain (its record of failing)
    within_s: float = 0.0  # the grading must end within this many seconds (0: no bound)


def _read(path_key: str) -> str:
    return (
        "try:\n"
        f"    canary = 'READ ' + open({{{path_key}!r}}).read()\n"
        "except OSError as error:\n"
        "    canary = 'blocked ' + type(error).__name__\n"
    )


def _absent(*paths_or_keys: str) -> str:
    """Each path (or `{key}`) must be out of the kernel's view: missing, or refused."""
    return (
        "import os\nseen = []\n"
        f"for path in ({', '.join(paths_or_keys)},):\n"
        "    try:\n"
        "        seen.append((path, os.listdir(path)[:3] if os.path.isdir(path) else open(path, 'rb').read(64)))\n"
        "    except OSError:\n"
        "        pass\n"
        "canary = 'blocked none of them exists here' if not seen else 'SAW ' + repr(seen)\n"
    )


REDIRECT_SOCKETS = (
    "import glob, os\nswapped = []\n"
    "argv = open('/proc/1/cmdline').read().split(chr(0))\n"
    "target = argv[argv.index('serve') + 1] if 'serve' in argv else '/var/run/docker.sock'\n"
    "runtime = os.path.dirname(os.environ['IPYTHONDIR'])\n"
    "for path in glob.glob(runtime + '/kernel-*'):\n"
    "    try:\n"
    "        os.rename(path, path + '.old')\n"
    "        os.symlink(target, path)\n"
    "        swapped.append(path)\n"
    "    except OSError:\n"
    "        pass\n"
    "canary = 'blocked the sockets are root\\'s' if not swapped else 'SWAPPED ' + repr(swapped)"
)

# The kernel's view is an allow-list (SECURITY.md, "The kernel's view"): what it does not name is not there.
VIEW_ATTACKS = [
    Attack("point-the-grader-at-another-socket", REDIRECT_SOCKETS, blocked="blocked"),
    Attack(  # the checkout's folder exists where the Python environment lives inside it (.venv): nothing else
        "read-the-checkout",
        _absent(
            *(f"{{checkout!r}} + '/{part}'" for part in ("solutions", ".git", "autograder", "pyproject.toml", "tests"))
        ),
        blocked="blocked",
    ),
    Attack(
        "read-the-course-git-history",
        "import os\nfound = []\n"
        "for line in open('/proc/self/mountinfo'):\n"
        "    point = line.split()[4]\n"
        "    for folder in (point, os.path.dirname(point), os.path.dirname(os.path.dirname(point))):\n"
        "        if os.path.isdir(os.path.join(folder, '.git')):\n"
        "            found.append(folder)\n"
        "found += [p for p in ({course_root!r} + '/.git', {checkout!r} + '/.git') if os.path.exists(p)]\n"
        "canary = 'blocked no git history in view' if not found else 'FOUND ' + repr(found)",
        blocked="blocked",
    ),
    Attack("read-the-hidden-assets", _absent("{hidden_assets!r}"), blocked="blocked"),
    Attack("read-the-results-folder", _absent("{results!r}"), blocked="blocked"),
    Attack(
        "read-host-secrets-in-etc",
        _absent("'/etc/shadow'", "'/etc/sudoers'", "'/etc/ssh'", "'/root'", "'/home'"),
        blocked="blocked",
    ),
    Attack(
        "read-sys-and-host-devices",
        _absent("'/sys/fs/cgroup'", "'/dev/vda'", "'/dev/mem'", "'/dev/kmsg'"),
        blocked="blocked",
    ),
    Attack(
        "escape-through-proc-root",
        "import os\nseen = []\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n"
        "            seen += [e for e in os.listdir(f'/proc/{{pid}}/root') if e in ('home', 'root', 'srv', 'opt', 'work')]\n"
        "        except OSError:\n"
        "            pass\n"
        "canary = 'blocked every root is the sandbox' if not set(seen) - {{'work'}} else 'SAW ' + repr(seen)",
        blocked="blocked",
    ),
    Attack(
        "write-into-assets-and-system",
        "wrote = []\n"
        "for path in ('/assets/planted', '/usr/planted', '/etc/passwd', '/kaggle/planted', '/planted'):\n"
        "    try:\n        open(path, 'a').write('x')\n        wrote.append(path)\n"
        "    except OSError:\n        pass\n"
        "canary = 'blocked read-only view' if not wrote else 'WROTE ' + repr(wrote)",
        blocked="blocked",
    ),
    Attack(
        "mount-the-host-back",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nmade = []\n"
        "os.makedirs('mnt', exist_ok=True)\n"
        "for source, kind in ((b'/dev/vda', b'ext4'), (b'proc', b'proc'), (b'sysfs', b'sysfs'), (b'/', None)):\n"
        "    if libc.mount(source, b'mnt', kind, 4096 if kind is None else 0, None) == 0:\n"
        "        made.append(source)\n"
        "# a user namespace of its own: capabilities there, but no host tree to reach\n"
        "if libc.unshare(0x10000000 | 0x00020000) == 0:\n"
        "    made += [p for p in ('/home', '/root', '/srv', {checkout!r}) if os.path.exists(p)]\n"
        "canary = 'blocked nothing of the host mounted' if not made else 'MOUNTED ' + repr(made)",
        blocked="blocked",
    ),
]

ATTACKS = [
    Attack("read-hidden-checks-by-path", _read("hidden"), blocked="blocked"),
    Attack("read-solution-by-path", _read("solution"), blocked="blocked"),
    Attack("read-other-submission", _read("other"), blocked="blocked"),
    Attack(
        "walk-the-file-system",
        "import os\nfound = []\ncanary = 'blocked nothing found'\n"
        "for top in ({checkout_parent!r}, '/srv', '/var', '/opt', '/tmp', {course_parent!r}):\n"
        "    for folder, subfolders, files in os.walk(top):\n"
        "        subfolders[:] = [d for d in subfolders if d not in ('.venv', '.git', 'site-packages', 'proc')]\n"
        "        for name in files:\n"
        "            try:\n"
        "                if {sentinel!r} in open(os.path.join(folder, name), errors='ignore').read(200000):\n"
        "                    found.append(os.path.join(folder, name))\n"
        "                    canary = 'FOUND ' + repr(found[:5])\n"
        "            except OSError:\n"
        "                pass\n",
        blocked="blocked",
    ),
    Attack(
        "read-through-proc",
        "import glob\nseen = []\n"
        "for name in glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ'):\n"
        "    try:\n        seen.append(open(name, 'rb').read().decode(errors='ignore'))\n"
        "    except OSError:\n        pass\n"
        "pids = sorted(int(p.split('/')[2]) for p in glob.glob('/proc/[0-9]*'))\n"
        "canary = 'blocked only own processes: ' + repr(pids[:3]) if 'hidden_checks' not in ''.join(seen) else 'SAW ' + ''.join(seen)[:500]",
        blocked="blocked",
    ),
    Attack(
        "write-a-result-file",
        "import json, os\nwrote = []\n"
        "fake = json.dumps({{'schema_version': 1, 'status': 'graded', 'score': 999, 'max_score': 23}})\n"
        "for target in ('result.json', {out_file!r}, {course_file!r}, '/tmp/result.json'):\n"
        "    try:\n        open(target, 'w').write(fake)\n        wrote.append(target)\n"
        "    except OSError:\n        pass\n"
        "canary = 'blocked outside the sandbox; wrote ' + repr(wrote)",
        base="template",
        expect="zero",
        blocked="blocked",
    ),
    Attack(
        "print-a-fake-result",
        "from IPython.display import publish_display_data\nimport json\n"
        "fake = json.dumps({{'nonce': 'guess', 'ok': True, 'value': json.dumps({{'tree': 1, 'blob': ''}})}})\n"
        "publish_display_data({{'application/vnd.autograder.bridge+json': fake}})\n"
        "print(json.dumps({{'score': 23, 'max_score': 23, 'status': 'graded'}}))\n"
        "canary = 'blocked printed a fake result'",
        base="template",
        expect="zero",
        blocked="blocked",
    ),
    Attack(
        "edit-notebook-metadata",
        "ip = get_ipython()\n"
        "ip.display_pub.publish({{'application/json': {{'autograder': {{'score': 23}}}}}}, metadata={{'autograder': {{'score': 23}}}})\n"
        "try:\n    open({submission!r}, 'a').write('{{}}')\n    canary = 'EDITED the submission'\n"
        "except OSError as error:\n    canary = 'blocked ' + type(error).__name__",
        base="template",
        expect="zero",
        blocked="blocked",
    ),
    Attack(
        "eq-always-true",
        "class Anything:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda self, other: False\n"
        "    def __bool__(self):\n        return True\n"
        "ones_f64 = grid = device = Anything()\n"
        "def _anything(*args, **kwargs):\n    return Anything()\n"
        "as_int32 = add_batch_dim = drop_unit_dims = scale_and_clamp = column_means = row_argmax = _anything\n"
        "center_columns = outer_sum = double_in_place = numpy_view = tensor_view = to_device = gradient_at = _anything\n"
        "canary = 'blocked objects that equal everything'",
        base="template",
        expect="zero",
        blocked="blocked",
    ),
    Attack(
        "patch-torch-in-the-kernel",
        "import torch\n"
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)\n"
        "torch.save = lambda obj, f, *a, **k: f.write(b'not a tensor file')\n"
        "canary = 'blocked patched torch'",
        base="template",
        expect="zero",
        blocked="blocked",
    ),
    Attack(
        "patch-builtins-in-the-kernel",
        "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.exec = lambda *a, **k: None\n"
        "canary = 'blocked patched builtins'",
        base="template",
        expect="zero",
    ),
    Attack(
        "tensor-subclass",
        "import torch\nclass Liar(torch.Tensor):\n    def __eq__(self, other):\n        return True\n"
        "    def allclose(self, *a, **k):\n        return True\n"
        "def column_means(m):\n    return torch.zeros(m.shape[1]).as_subclass(Liar)\n"
        "def row_argmax(m):\n    return torch.zeros(m.shape[0], dtype=torch.long).as_subclass(Liar)\n"
        "ones_f64 = torch.zeros(3, 4, dtype=torch.float64).as_subclass(Liar)\n"
        "canary = 'blocked tensor subclass'",
        base="template",
        expect="zero",
        blocked="blocked",
    ),
    # The kernel is PID 1 of its own namespace: the grader is not even visible,
    # and signals sent from inside to PID 1 without a handler are dropped.
    Attack(
        "kill-the-parent",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ncanary = 'blocked the grader is out of reach'",
        blocked="blocked",
    ),
    Attack(
        "kill-the-process-group",
        "import os, signal\nos.killpg(0, signal.SIGKILL)\ncanary = 'blocked the grader is out of reach'",
        blocked="blocked",
    ),
    Attack(
        "kill-everything-it-can",
        "import os, signal\ncanary = 'blocked the grader is out of reach'\n"
        "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError as error:\n    canary += ' (' + type(error).__name__ + ')'",
        blocked="blocked",
    ),
    Attack(
        "fork-bomb",
        "import os, time\nchildren = 0\n"
        "try:\n    for _ in range(3000):\n        if os.fork() == 0:\n            time.sleep(300)\n            os._exit(0)\n        children += 1\n"
        "except OSError as error:\n    pass\n"
        "canary = f'blocked after {{children}} children'",
        blocked="blocked",
    ),
    Attack(
        "thread-bomb",
        "import threading, time\nthreads = 0\n"
        "try:\n    for _ in range(3000):\n        threading.Thread(target=time.sleep, args=(300,), daemon=True).start()\n        threads += 1\n"
        "except RuntimeError:\n    pass\n"
        "canary = f'blocked after {{threads}} threads'",
        blocked="blocked",
    ),
    Attack(
        "memory-bomb",
        "blocks = []\nfor _ in range(64):\n    blocks.append(bytearray(64 * 1024 * 1024))\ncanary = 'ALLOCATED 4 GiB'",
        expect="kernel-died",
    ),
    Attack(
        "disk-fill",
        "written = 0\nchunk = b'x' * (1 << 20)\n"
        "try:\n    with open('big.bin', 'wb') as handle:\n        for _ in range(3 * 1024):\n            handle.write(chunk)\n            written += 1\n"
        "except OSError as error:\n    canary = f'blocked at {{written}} MiB: {{type(error).__name__}}'\n"
        "else:\n    canary = 'WROTE 3 GiB'\n"
        "import os\nos.remove('big.bin')",
        blocked="blocked",
    ),
    Attack(
        "endless-output",
        "canary = 'blocked output capped'\nline = 'y' * 999\nfor _ in range(300_000):\n    print(line)",
        blocked="blocked",
    ),
    Attack(
        "sleep-forever", "canary = 'blocked by the cell timeout'\nimport time\ntime.sleep(10**6)", blocked="blocked"
    ),
    Attack(
        "ignore-interrupts",
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        expect="kernel-died",
    ),
    Attack("sys-exit", "canary = 'blocked sys.exit is a cell error'\nimport sys\nsys.exit(0)", blocked="blocked"),
    Attack("os-exit", "import os\nos._exit(0)", expect="kernel-died"),
    Attack("segfault", "import ctypes\nctypes.string_at(0)", expect="kernel-died"),
    Attack(
        "connect-to-a-loopback-listener",
        "import socket\n"
        "try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'LEAK')\n    canary = 'CONNECTED'\n"
        "except OSError as error:\n    canary = 'blocked ' + type(error).__name__",
        blocked="blocked",
    ),
    Attack(
        "connect-to-other-kernels-sockets",
        "import glob, os, socket\nmine = os.path.dirname(os.environ['HOME'])\nreached = []\n"
        "for path in glob.glob('/var/lib/autograder/sandboxes/*/runtime/kernel-*') + glob.glob('/tmp/*/kernel-*'):\n"
        "    if path.startswith(mine):\n        continue\n"
        "    try:\n        socket.socket(socket.AF_UNIX).connect(path)\n        reached.append(path)\n"
        "    except OSError:\n        pass\n"
        "canary = 'blocked no other kernel reached' if not reached else 'REACHED ' + repr(reached)",
        blocked="blocked",
    ),
    Attack(
        "ask-the-fork-server-for-a-root-kernel",  # its socket's path is in the kernel's command line
        "import glob, os, socket\nreached = []\n"
        "words = open('/proc/self/cmdline').read().split(chr(0))\n"
        "paths = [w for w in words if w.endswith('/socket')] + glob.glob('/var/lib/autograder/forkserver-*/socket')\n"
        "for path in paths:\n"
        "    try:\n        socket.socket(socket.AF_UNIX).connect(path)\n        reached.append(path)\n"
        "    except OSError:\n        pass\n"
        "canary = 'blocked fork server out of reach' if not reached else 'REACHED ' + repr(reached)",
        blocked="blocked",
    ),
    Attack(
        "outlive-the-kernel",
        "import subprocess, threading, time\n"
        "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
        "subprocess.Popen(['sh', '-c', 'trap \"\" HUP INT TERM; sleep 1000'], start_new_session=True)\n"
        "threading.Thread(target=time.sleep, args=(1000,), daemon=False).start()\n"
        "canary = 'blocked started three survivors'",
        blocked="blocked",
    ),
    Attack(
        "symlink-in-outputs",
        "import os\nos.makedirs('outputs', exist_ok=True)\n"
        "os.symlink({hidden!r}, 'outputs/figure.png')\n"
        "try:\n    canary = 'READ ' + open('outputs/figure.png').read()\n"
        "except OSError as error:\n    canary = 'blocked ' + type(error).__name__",
        blocked="blocked",
    ),
    # The grader's own resources (issue 13, section 4): nothing the kernel sends is kept unbounded or is fatal.
    Attack(
        "print-one-huge-message",
        "canary = 'blocked output capped, the first message too'\n"
        "print('x' * 100_000_000)\nprint('y' * 30_000_000)",  # over, then under, the grader's message limit
        blocked="blocked",
    ),
    Attack(
        "expand-stride-zero-tensor",  # ~16 bytes sent that the grader would copy into 4 GiB (as an array)
        "import numpy, torch\n_save = torch.save\n"
        "def _expanded(obj, f, *args, **kwargs):\n"
        "    if isinstance(obj, list):\n"
        "        obj = [t.reshape(-1)[:1].expand(2**30) if t.numel() else t for t in obj]\n"
        "    return _save(obj, f, *args, **kwargs)\n"
        "torch.save = _expanded\n"
        "def numpy_view(t):\n    return numpy.zeros(4, dtype=numpy.float32)\n"
        "canary = 'blocked expanded tensors are refused'",
        base="template",
        expect="zero",
        blocked="blocked",
    ),
    Attack(
        "widget-comm-empty-state",
        "import comm\n"
        "comm.create_comm(target_name='jupyter.widget', data={{'state': {{}}}})\n"
        "comm.create_comm(target_name='jupyter.widget', data={{}})\n"
        "comm.create_comm(target_name='jupyter.widget', data={{'state': {{'_model_module': '@jupyter-widgets/output', "
        "'_model_name': 'OutputModel', 'outputs': 5}}}})\n"
        "canary = 'blocked widget comms are not followed'",
        blocked="blocked",
    ),
    Attack(
        "unhashable-display-id",
        "ip = get_ipython()\n"
        "ip.display_pub.publish({{'text/plain': 'x'}}, transient={{'display_id': ['unhashable']}})\n"
        "ip.display_pub.publish({{'text/plain': 'y'}}, transient={{'display_id': {{'a': 1}}}}, update=True)\n"
        "canary = 'blocked display ids are not followed'",
        blocked="blocked",
    ),
    Attack(
        "forge-unreadable-messages",  # the signing key is in the kernel's memory
        "import json\nk = get_ipython().kernel\ns = k.session\n"
        "parent = json.dumps(get_ipython().parent_header, default=str).encode()\n"
        "def send_raw(content, header=None):\n"
        "    parts = [json.dumps(header or s.msg_header('stream'), default=str).encode(), parent, b'{{}}', content]\n"
        "    k.iopub_socket.send_multipart([b'stream', b'<IDS|MSG>', s.sign(parts), *parts])\n"
        "send_raw(b'{{not json')\nsend_raw(b'[1, 2]')\nsend_raw(b'{{}}', header={{'msg_type': 'stream'}})\n"
        "send_raw(b'[' + b'[],' * 1_000_000 + b'[]]')\n"
        "replay = s.serialize(s.msg('stream', {{'name': 'stdout', 'text': 'twice'}}, parent=get_ipython().parent_header))\n"
        "k.iopub_socket.send_multipart([b'stream', *replay])\nk.iopub_socket.send_multipart([b'stream', *replay])\n"
        "canary = 'blocked unreadable messages are dropped'",
        blocked="blocked",
    ),
    Attack(
        "working-folder-traps",  # what a grader reading the working folder would wait on, follow or read whole
        "import os, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nmade = []\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "for name in ('outputs/figure.png', 'trap.ipynb'):\n    os.mkfifo(name)\n    made.append(name)\n"
        "os.symlink({hidden!r}, 'answers.ipynb')\nmade.append('answers.ipynb')\n"
        "try:\n    with open('big.ipynb', 'wb') as big:\n        big.truncate(7 * 2**30)\n    made.append('big.ipynb')\n"
        "except OSError as error:\n    made.append(type(error).__name__)\n"
        "canary = 'made ' + ' '.join(made)",
        blocked="made",
    ),
]

# Privilege, other processes, the grader's traces, and check-time tricks (issue 13: "trusts nothing";
# "the grader's own resources are bounded"; "blame the right party"). Attacks whose effect shows only
# while the checks call in (base "template": every function is the attack) rebind `canary` on each
# call, so the canary check, which runs last, reads how far they got; a bound (`within_s`) or the
# extra tests in test_hostile.py decide those.
SETUID_PROGRAMS = """
import os, subprocess
programs = subprocess.run(['find', '/usr', '-xdev', '-type', 'f', '-perm', '/6000'], capture_output=True, text=True).stdout.split()
for getcap in ('/usr/sbin/getcap', '/sbin/getcap'):  # file capabilities (ping, gst-ptp-helper), where listed
    if os.path.exists(getcap):
        listed = subprocess.run([getcap, '-r', '/usr'], capture_output=True, text=True).stdout
        programs += [line.split()[0] for line in listed.splitlines() if line.strip()]
        break
mine, gained = str(os.getuid()), []
for program in programs:
    try:
        child = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        continue
    try:
        status = open('/proc/%d/status' % child.pid).read().splitlines()  # read at once: exec is done
    except OSError:  # it ended already (a busy machine): nothing to read, nothing gained
        status = []
    ids = [word for line in status if line.startswith(('Uid:', 'Gid:')) for word in line.split()[1:]]
    caps = [line.split()[1] for line in status if line.startswith(('CapEff:', 'CapPrm:'))]
    child.kill()
    child.wait()
    if status and (set(ids) != {{mine}} or set(caps) != {{'0' * 16}}):
        gained.append((program, ids, caps))
os.makedirs('mnt', exist_ok=True)
for command in (['mount', '-t', 'tmpfs', 'none', 'mnt'], ['umount', '-l', '/assets'], ['su', '-c', 'id -u', 'root']):
    try:
        ran = subprocess.run(command, input='\\n', capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:  # `su` waiting on a password it never gets
        continue
    if ran.returncode == 0:
        gained.append((command, ran.stdout[:100]))
status = open('/proc/self/status').read()
if 'NoNewPrivs:\\t1' not in status:
    gained.append('no_new_privs is off')
if gained:
    canary = 'GAINED ' + repr(gained)[:2000]
else:
    canary = 'blocked %d setuid or capability programs ran as the student' % len(programs)
"""

PROCESS_KNOBS = """
import errno
written, refused = [], dict()
def _current(path, fallback):
    try:
        return open(path).read()
    except OSError:
        return fallback
# each write is harmless if it lands (the value already there, sysrq's help), yet shows a way in
for path, value in (
    ('/proc/sysrq-trigger', 'h'),
    ('/proc/sys/kernel/core_pattern', None),
    ('/proc/sys/kernel/modprobe', None),
    ('/proc/sys/kernel/hostname', None),
    ('/proc/sys/kernel/ns_last_pid', None),
    ('/proc/sys/vm/overcommit_memory', None),
    ('/proc/sys/vm/drop_caches', '1'),
    ('/proc/sys/fs/file-max', None),
    ('/proc/self/oom_score_adj', '-1000'),
    ('/proc/self/oom_adj', '-17'),
    ('/proc/1/oom_score_adj', '-1000'),
    ('/proc/self/setgroups', 'allow'),
    ('/proc/self/uid_map', '0 0 4294967295'),
    ('/proc/self/gid_map', '0 0 4294967295'),
    ('/proc/self/loginuid', '0'),
    ('/proc/self/coredump_filter', '0x33'),
):
    try:
        with open(path, 'w') as handle:
            handle.write(value if value is not None else _current(path, '0'))
        written.append(path)
    except OSError as error:
        refused[path] = errno.errorcode.get(error.errno, str(error.errno))
low = _current('/proc/self/oom_score_adj', '?').strip()
if written or low.startswith('-'):
    canary = 'WROTE ' + repr(written) + ' oom_score_adj ' + low
else:
    canary = 'blocked no kernel or process knob written: ' + repr(refused)
"""

# x86_64, aarch64: the privileged calls, each either a way out (a module, a kexec, a handle outside
# the view, a real-time priority) or a host-wide change; and those a fresh uid may make but which
# give it nothing beyond its own (recorded)
SYSTEM_CALLS = """
import ctypes, errno, os, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
numbers = dict(
    x86_64=dict(syslog=103, init_module=175, finit_module=313, kexec_load=246, reboot=169, settimeofday=164,
        sethostname=170, swapon=167, acct=163, chroot=161, iopl=172, name_to_handle_at=303, open_by_handle_at=304,
        ioprio_set=251, setns=308, unshare=272, userfaultfd=323, perf_event_open=298, bpf=321, io_uring_setup=425,
        add_key=248, clone=56, clone3=435),
    aarch64=dict(syslog=116, init_module=105, finit_module=273, kexec_load=104, reboot=142, settimeofday=170,
        sethostname=161, swapon=224, acct=89, chroot=51, name_to_handle_at=264, open_by_handle_at=265,
        ioprio_set=30, setns=268, unshare=97, userfaultfd=282, perf_event_open=241, bpf=280, io_uring_setup=425,
        add_key=217, clone=220, clone3=435),
)[platform.machine()]
def call(name, *args):
    if name not in numbers:
        return 'ENOSYS'
    values = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = libc.syscall(ctypes.c_long(numbers[name]), *values)
    return result if result >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
log = ctypes.create_string_buffer(4096)
handle = ctypes.create_string_buffer(8 + 128)
handle[0:4] = (128).to_bytes(4, 'little')
mount_id = ctypes.c_int()
call('name_to_handle_at', -100, b'/usr/bin/env', handle, ctypes.byref(mount_id), 0)
privileged = dict(
    read_kernel_log=call('syslog', 3, log, 4096),
    load_module=call('init_module', 0, 0, b''),
    load_module_fd=call('finit_module', os.open('/usr/bin/env', os.O_RDONLY), b'', 0),
    kexec=call('kexec_load', 0, 0, 0, 0),
    reboot_setting=call('reboot', 0xfee1dead, 672274793, 0, 0),  # ctrl-alt-del off: harmless if it lands
    set_clock=call('settimeofday', 0, 0),
    set_host_name=call('sethostname', b'owned', 5),
    swap_on=call('swapon', b'/tmp/swap', 0),
    process_accounting=call('acct', b'/tmp/acct'),
    chroot=call('chroot', b'/tmp'),
    port_io=call('iopl', 3),
    open_by_handle=call('open_by_handle_at', -100, handle, 0),  # the "shocker" way past a mount
    real_time_io=call('ioprio_set', 1, 0, 1 << 13),
    enter_mount_namespace=call('setns', os.open('/proc/self/ns/mnt', os.O_RDONLY), 0),
    new_mount_namespace=call('unshare', 0x00020000),
    user_namespace=call('unshare', 0x10000000),  # every capability over new network and mount namespaces
)
child = call('clone', 0x10000000 | 17, 0, 0, 0, 0)  # a child in a user namespace of its own (SIGCHLD)
if child == 0:
    os._exit(0)
if isinstance(child, int):
    os.waitpid(child, 0)
privileged['clone_user_namespace'] = child
for name, attempt in (
    ('real_time_cpu', lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))),
    ('negative_nice', lambda: os.setpriority(os.PRIO_PROCESS, 0, -20)),
    ('block_device', lambda: os.mknod('disk', 0o600 | 0o60000, os.makedev(8, 0))),
):
    try:
        attempt()
        privileged[name] = 0
    except OSError as error:
        privileged[name] = errno.errorcode.get(error.errno, str(error.errno))
bpf_map = ctypes.create_string_buffer(bytes([2, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1]) + bytes(115))
recorded = dict(
    userfaultfd=call('userfaultfd', 0),
    perf_event_open=call('perf_event_open', ctypes.create_string_buffer(128), 0, -1, -1, 0),
    bpf_map=call('bpf', 0, bpf_map, 128),
    io_uring=call('io_uring_setup', 8, ctypes.create_string_buffer(120)),
    clone3=call('clone3', 0, 0),  # ENOSYS: its flags are out of a filter's reach, glibc falls back to clone
    own_keyring=call('add_key', b'user', b'own', b'x', 1, -2),  # the process keyring: gone with the process
)
allowed = [name for name, result in privileged.items() if isinstance(result, int)]
if allowed:
    canary = 'ALLOWED ' + repr(allowed)
else:
    canary = 'blocked every privileged call refused: ' + repr(privileged) + '; recorded ' + repr(recorded)
"""

OTHER_PROCESSES = """
import ctypes, os
mine = os.getuid()
libc = ctypes.CDLL(None, use_errno=True)
foreign, reached = [], []
for pid in range(1, min(int(open('/proc/sys/kernel/pid_max').read()), 1 << 16) + 1):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        continue
    except PermissionError:
        foreign.append(pid)  # there, and someone else's
for entry in os.listdir('/proc'):
    if entry.isdigit() and os.stat('/proc/' + entry).st_uid not in (0, mine):
        foreign.append(int(entry))
    elif entry.isdigit() and int(entry) != os.getpid():
        foreign.append(int(entry))  # nothing else of the student's runs now: any other process is not its
class IoVec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('length', ctypes.c_size_t)]
buffer = ctypes.create_string_buffer(64)
for pid in sorted(set(foreign)):
    local, remote = IoVec(ctypes.addressof(buffer), 64), IoVec(0x400000, 64)
    if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0:
        reached.append((pid, 'process_vm_readv'))
    if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
        reached.append((pid, 'ptrace'))
    try:
        with open('/proc/%d/mem' % pid, 'rb') as memory:
            memory.seek(0x400000)
            reached.append((pid, memory.read(16)))
    except (OSError, ValueError):
        pass
tasks = len(os.listdir('/proc/self/task'))
if foreign or reached:
    canary = 'SAW ' + repr(sorted(set(foreign))[:20]) + ' ' + repr(reached)[:500]
else:
    canary = 'blocked no process but the kernel itself (%d threads), parent %d' % (tasks, os.getppid())
"""

GRADER_ENVIRONMENT = """
import glob, os
allowed = set('PATH HOME TMPDIR LANG PYTHONNOUSERSITE PYTHONDONTWRITEBYTECODE OMP_NUM_THREADS MKL_NUM_THREADS '
    'OPENBLAS_NUM_THREADS MPLBACKEND MPLCONFIGDIR IPYTHONDIR TORCH_HOME CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES '
    'NVIDIA_DRIVER_CAPABILITIES LD_LIBRARY_PATH PYDEVD_USE_FRAME_EVAL TERM CLICOLOR FORCE_COLOR CLICOLOR_FORCE PAGER '
    'GIT_PAGER JPY_PARENT_PID JPY_SESSION_NAME'.split())  # the grader's clean set, and what ipykernel adds
secrets = ({sentinel!r}, {course_root!r}, {results!r}, {checkout!r} + '/solutions', 'hidden_checks', 'AUTOGRADER')
texts = ['\\n'.join('%s=%s' % item for item in os.environ.items())]
for name in glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline') + ['/proc/self/auxv']:
    try:
        texts.append(open(name, 'rb').read().decode(errors='replace'))
    except OSError:
        pass
seen = sorted(set(os.environ) - allowed) + [secret for secret in secrets if any(secret in text for text in texts)]
if os.environ.get('HOME') != os.getcwd():
    seen.append('HOME is not the working folder: ' + os.environ.get('HOME', ''))
canary = 'blocked a clean environment of %d names' % len(os.environ) if not seen else 'SAW ' + repr(seen)
"""

HOSTILE_TEXT = '\\x1b]0;owned\\x07\\x1b[2J\\x9b2J\\r\\u202e<script>alert(1)</script>=HYPERLINK("http://127.0.0.1/")'
HOSTILE_TEXT_EVERYWHERE = f"""
import sys
from IPython.display import HTML, display
TEXT = '{HOSTILE_TEXT}'
print(TEXT)
print(TEXT, file=sys.stderr)
display(HTML(TEXT))
Hostile = type(TEXT, (Exception,), dict())
calls = []
def _raise(*args, **kwargs):
    global canary
    calls.append(1)
    canary = 'blocked %d calls raised ' % len(calls) + TEXT
    raise Hostile(TEXT + chr(0) + '\\udcff')
as_int32 = add_batch_dim = drop_unit_dims = scale_and_clamp = column_means = row_argmax = _raise
center_columns = outer_sum = double_in_place = numpy_view = tensor_view = to_device = gradient_at = _raise
class Device:
    def __repr__(self):
        return TEXT
ones_f64 = grid = TEXT
device = Device()
canary = 'blocked no call yet ' + TEXT
raise Hostile(TEXT)
"""

# A function a probe calls finds the probe's source one frame up; the bridge cuts the source out of
# what the kernel says back, whole or by lines. These forms each keep a piece of it.
LEAK_THE_PROBE = """
import sys
def _probe_source():
    frame = sys._getframe(2)
    while frame is not None and 'request' not in frame.f_locals:
        frame = frame.f_back
    return frame.f_locals['request'].get('code', '') if frame is not None else ''
def _named(name):
    return type(name, (Exception,), dict())
FORMS = [
    lambda code: ValueError(code),
    lambda code: ValueError(repr(code)),
    lambda code: ValueError(code.replace(chr(10), '; ')),
    lambda code: ValueError(code[1:]),  # every line but the first whole: the first is cut at its start
    lambda code: ValueError('x' * (1000 - 20) + code),  # the kernel keeps 1000 characters
    lambda code: _named('X' * (200 - 20) + code.replace(chr(10), ' '))(),  # the grader keeps 200 of a name
    lambda code: _named(code.splitlines()[0][2:])(code.splitlines()[-1][:-2]),
]
calls = []
def _leak(*args, **kwargs):
    global canary
    calls.append(1)
    canary = 'blocked? %d calls raised the probe source' % len(calls)
    raise FORMS[(len(calls) - 1) % len(FORMS)](_probe_source())
double_in_place = numpy_view = tensor_view = to_device = gradient_at = _leak
canary = 'blocked? no probe called in'
"""

BASE_EXCEPTIONS = """
import time
class SlowToSay(Exception):
    slept = False
    def __str__(self):
        if not SlowToSay.slept:  # once: the bridge's timeout, then the interrupt, cut it short
            SlowToSay.slept = True
            time.sleep(10**6)
        return 'slow to say'
class Unsayable(Exception):
    def __str__(self):
        raise KeyboardInterrupt
class Nameless(type):
    @property
    def __name__(cls):
        raise SystemExit('from the name')
class NoName(Exception, metaclass=Nameless):
    pass
RAISED = [KeyboardInterrupt('from a check'), SystemExit(3), GeneratorExit(), StopIteration(), RecursionError(),
          MemoryError(), Unsayable(), NoName(), SlowToSay()]
calls = []
def _raise(*args, **kwargs):
    global canary
    calls.append(1)
    # past one of each, the grader went on calling after every kind
    canary = ('blocked ' if len(calls) > len(RAISED) else 'STOPPED? ') + 'after %d calls' % len(calls)
    raise RAISED[(len(calls) - 1) % len(RAISED)]
as_int32 = add_batch_dim = drop_unit_dims = scale_and_clamp = column_means = row_argmax = _raise
center_columns = outer_sum = double_in_place = numpy_view = tensor_view = to_device = gradient_at = _raise
canary = 'STOPPED? before any call'
"""

STALL_EVERY_CALL = """
import time
def _stall(*args, **kwargs):
    {body}
as_int32 = add_batch_dim = drop_unit_dims = scale_and_clamp = column_means = row_argmax = _stall
center_columns = outer_sum = double_in_place = numpy_view = tensor_view = to_device = gradient_at = _stall
canary = 'blocked by the checks budget'
"""

STALL_AT_SHUTDOWN = """
import atexit, signal, subprocess, threading, time, weakref
for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
    signal.signal(number, signal.SIG_IGN)
def _linger():
    open('at-exit.txt', 'w').write('ran')
    subprocess.Popen(['sleep', '1000'], start_new_session=True)
    while True:
        try:
            time.sleep(10**6)
        except BaseException:
            pass
atexit.register(_linger)
threading._register_atexit(_linger)
class Haunt:
    def __del__(self):
        _linger()
haunt = Haunt()
weakref.finalize(haunt, _linger)
kernel = get_ipython().kernel
kernel.control_handlers['shutdown_request'] = kernel.shell_handlers['shutdown_request'] = lambda *args: _linger()
canary = 'blocked shutdown hooks that never end'
"""

EXHAUST_DESCRIPTORS = """
import os, resource
held = []
try:
    while True:
        held.append(os.open('/dev/null', os.O_RDONLY))
except OSError as error:
    stopped = type(error).__name__
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1 << 20, 1 << 20))
    raised = 'RAISED the limit'
except (ValueError, OSError) as error:
    raised = type(error).__name__
canary = 'blocked at %d descriptors (%s); raising the limit: %s' % (len(held), stopped, raised)
"""

FILL_WRITABLE_FOLDERS = """
import errno, os, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
chunk = b'x' * (1 << 20)
runtime = os.path.dirname(os.environ['IPYTHONDIR'])
filled = dict()
for folder in (os.environ['IPYTHONDIR'], os.environ['MPLCONFIGDIR'], runtime, os.getcwd(), '/tmp', '/var/tmp',
               '/dev/shm', '/run/lock'):
    written, outcome = 0, 'never full'
    for number in range(64):
        try:
            with open(os.path.join(folder, 'fill-%d' % number), 'wb') as handle:
                for _ in range(64):
                    handle.write(chunk)
                    written += 1
        except OSError as error:
            outcome = errno.errorcode.get(error.errno, str(error.errno))
            if error.errno != errno.EFBIG:
                break
    filled[folder.replace(runtime, 'runtime')] = (written, outcome)
capped = all(outcome != 'never full' for _, outcome in filled.values())
canary = ('blocked every folder capped: ' if capped else 'UNCAPPED ') + repr(filled)
"""

ODD_VALUES = """
import time
import torch
loop = []
loop.append(loop)
deep = []
for _ in range(100_000):
    deep = [deep]
class HugeRepr:
    def __repr__(self):
        return 'x' * 50_000_000
class Stalling(torch.Tensor):  # its __torch_function__ runs on the bridge's own detach()
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        time.sleep(10**6)
def _endless():
    while True:
        yield 1
VALUES = [
    loop,
    deep,
    dict((str(n), n) for n in range(300_000)),
    HugeRepr(),
    torch.empty(2**40, device='meta'),
    torch.sparse_coo_tensor(torch.zeros(2, 1, dtype=torch.long), torch.ones(1), (2**31, 2**31)),
    torch.empty(2**27, dtype=torch.float64)[:4],  # a view: 16 bytes on a 1 GiB storage never touched
    torch.zeros(1).expand(2**33),
    _endless(),
    [torch.zeros(2**20)] * 200,  # one storage named 200 times: 800 MiB if each were copied
    torch.zeros(4).as_subclass(Stalling),
]
calls = []
def _odd(*args, **kwargs):
    global canary
    calls.append(1)
    canary = 'blocked %d odd values returned' % len(calls)
    return VALUES[(len(calls) - 1) % len(VALUES)]
as_int32 = add_batch_dim = drop_unit_dims = scale_and_clamp = column_means = row_argmax = _odd
center_columns = outer_sum = double_in_place = numpy_view = tensor_view = to_device = gradient_at = _odd
ones_f64, grid, device = loop, deep, HugeRepr()
canary = 'blocked no value returned yet'
"""

# The reply's text is the student's to write (json.dumps is theirs to patch): each forged value
# must be refused as data the student sent, never break the check that read it.
FORGE_REPLY_VALUES = """
import base64, io, json, struct, zipfile
import torch
_dumps = json.dumps
def _blob(*tensors):
    buffer = io.BytesIO()
    torch.save(list(tensors), buffer)
    return buffer.getvalue()
def _text(data):
    return base64.b64encode(data).decode()
def _tensor(shape, index=0, dtype='float32', device='cpu'):
    return dict(t='tensor', index=index, shape=shape, dtype=dtype, device=device, requires_grad=False, subclass=None)
def _rewritten(change):
    source = zipfile.ZipFile(io.BytesIO(_blob(torch.zeros(4))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info.filename, change(info.filename, source.read(info)))
    return out.getvalue()
def _lying_sizes():
    data = bytearray(_blob(torch.zeros(4)))
    at = data.find(b'PK\\x01\\x02')
    while at != -1:
        length = struct.unpack_from('<H', data, at + 28)[0]
        if data[at + 46:at + 46 + length].endswith(b'data/0'):
            struct.pack_into('<II', data, at + 20, 0x7FFFFFF0, 0x7FFFFFF0)
        at = data.find(b'PK\\x01\\x02', at + 4)
    return bytes(data)
def _deflated():
    source = zipfile.ZipFile(io.BytesIO(_blob(torch.zeros(4))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            padding = bytes(200 << 20) if info.filename.endswith('data/0') else b''
            target.writestr(info.filename, source.read(info) + padding)
    return out.getvalue()
FOUR = _text(_blob(torch.zeros(4)))
FORGED = [
    dict(tree=_tensor([2**31, 2**31], dtype='float64'), blob=_text(_blob(torch.zeros(1)))),
    dict(tree=_tensor([4]), blob=_text(_lying_sizes())),
    dict(tree=_tensor([4]), blob=_text(_deflated())),
    dict(tree=_tensor([4]), blob=_text(_rewritten(lambda name, body: b"cos\\nsystem\\n(S'id'\\ntR." if name.endswith('data.pkl') else body))),
    dict(tree=_tensor([4]), blob=_text(_rewritten(lambda name, body: body[:-3] if name.endswith('data.pkl') else body))),
    dict(tree=[_tensor([4]), _tensor([4])], blob=FOUR),
    dict(tree=_tensor([4], index=7), blob=FOUR),
    dict(tree=_tensor([4], device='nowhere:0'), blob=FOUR),
    dict(tree=dict(t='device', name='nowhere'), blob=''),
    dict(tree=dict(t='size', items=[float('inf')]), blob=''),
    dict(tree=dict(t='npscalar', dtype='int8', value=10**30), blob=''),
    dict(tree=dict(t='module', type='x', training=True, parameters=[], state=[], devices=[], children=[], repr=''), blob=''),
    dict(tree=dict(t='float', value="__import__('os').system('id')"), blob=''),
    dict(tree=dict(t='ndarray', index=0, shape=[4], dtype='(1000000000,)f8'), blob=FOUR),
    dict(tree=dict(t='dict', items=[[[1], 2]]), blob=''),
    dict(tree=dict(t='tuple', items=7), blob=''),
    dict(tree=dict(t='nothing-known'), blob=''),
    dict(blob=''),
]
forged = []
def _forging(value, *args, **kwargs):
    global canary
    if type(value) is dict and set(value) == set(['tree', 'blob']) and value['tree'] != canary:
        forged.append(1)
        canary = 'blocked %d forged values sent' % len(forged)
        return _dumps(FORGED[(len(forged) - 1) % len(FORGED)], *args, **kwargs)
    return _dumps(value, *args, **kwargs)
json.dumps = _forging
def _anything(*args, **kwargs):
    return torch.zeros(4)
as_int32 = add_batch_dim = drop_unit_dims = scale_and_clamp = column_means = row_argmax = _anything
center_columns = outer_sum = double_in_place = numpy_view = tensor_view = to_device = gradient_at = _anything
ones_f64 = grid = device = torch.zeros(4)
canary = 'blocked no forged value yet'
"""

TRUST_ATTACKS = [
    Attack("setuid-programs-gain-nothing", SETUID_PROGRAMS, blocked="blocked"),
    Attack("write-kernel-and-process-knobs", PROCESS_KNOBS, blocked="blocked"),
    Attack("privileged-system-calls", SYSTEM_CALLS, blocked="blocked"),
    Attack("reach-other-processes", OTHER_PROCESSES, blocked="blocked"),
    Attack("read-the-grader-environment", GRADER_ENVIRONMENT, blocked="blocked"),
    Attack("hostile-text-everywhere", HOSTILE_TEXT_EVERYWHERE, base="template", expect="zero", blocked="blocked"),
    Attack("leak-the-probe-source", LEAK_THE_PROBE, base="template", expect="zero", blocked="blocked?"),
    Attack("raise-base-exceptions-when-called", BASE_EXCEPTIONS, base="template", expect="zero", blocked="blocked"),
    Attack(
        "sleep-when-called",
        STALL_EVERY_CALL.format(body="time.sleep(10**6)"),
        base="template",
        expect="zero",
        within_s=60,
    ),
    Attack(
        "swallow-interrupts-when-called",
        STALL_EVERY_CALL.format(
            body="while True:\n        try:\n            time.sleep(10**6)\n        except BaseException:\n            pass"
        ),
        base="template",
        expect="zero",
        within_s=60,
    ),
    Attack("stall-at-shutdown", STALL_AT_SHUTDOWN, blocked="blocked", within_s=30),
    Attack("exhaust-file-descriptors", EXHAUST_DESCRIPTORS, base="template", expect="zero", blocked="blocked"),
    Attack("fill-every-writable-folder", FILL_WRITABLE_FOLDERS, blocked="blocked"),
    Attack("return-odd-values", ODD_VALUES, base="template", expect="zero", blocked="blocked", within_s=60),
    Attack("forge-reply-values", FORGE_REPLY_VALUES, base="template", expect="zero", blocked="blocked"),
]
