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
