"""Values as data across the kernel boundary: a JSON tree plus one tensor blob.

This module runs on both sides. The grader imports it; the bridge also sends
its source into the student's kernel with every request, so it must stay
self-contained: standard library at the top, torch and numpy imported lazily,
nothing from the `autograder` package. Decoding never runs code: the tree is
JSON and tensors come back through `torch.load(weights_only=True)`.

Decoding is bounded before it allocates, because the other side may be hostile
(the student's kernel can send any bytes it likes, not only what `pack` makes):
the JSON may hold at most `MAX_CONTAINERS` lists and objects; the blob must be a
zip of stored (uncompressed) records whose sizes, and the tree's declared shapes
and dtypes, fit in `max_bytes`; each tensor loaded must be plain, contiguous and
the sole owner of a storage exactly its size (no stride-0 `expand()`, no views
into a shared storage), match its declaration, and be used once in the tree.

Tags in the tree (every other JSON value stands for itself)::

    {"t": "tuple", "items": [...]}          {"t": "dict", "items": [[k, v], ...]}
    {"t": "float", "value": "nan"}          {"t": "tensor", "index": i, "device": "cuda:0", ...}
    {"t": "ndarray", "index": i, ...}       {"t": "npscalar", "dtype": "float32", "value": v}
    {"t": "dtype", "name": "float32"}       {"t": "device", "name": "cpu"}
    {"t": "size", "items": [2, 3]}          {"t": "module", ...}
    {"t": "object", "type": "...", "repr": "..."}   anything else, described, never rebuilt
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable
from typing import Any

MIME = "application/vnd.autograder.bridge+json"
FIGURES_MODULE = "_autograder_figures"  # where the kernel keeps its figure recorder (figure_records.py)
GRADING_MODULE = "_autograder_grading"  # present in a kernel being graded: what a self-check there needs to know
MAX_DEPTH = 24
MAX_ITEMS = 200_000
MAX_CONTAINERS = 4 * MAX_ITEMS  # JSON lists and objects in one text: each costs ~60 bytes when parsed
REPR_LIMIT = 300
STOP = "CallTimedOut"  # the exception an in-process call's timeout raises (autograder.in_process)
_BLOB_RECORDS = MAX_ITEMS + 16  # a torch.save zip holds one record per storage and a few of its own


class ValueTooLarge(Exception):
    """Raised on either side when a value passes the size bound."""


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _safe_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    try:
        text = repr(value)
    except BaseException:  # student objects may raise anything from __repr__
        text = "<repr failed>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Encoder:
    """Turns a value into (tree, tensors); used in the kernel for results and
    in the grader for a check's arguments."""

    def __init__(self, *, max_bytes: int, module_state: bool = True) -> None:
        self.tensors: list[Any] = []
        self.items = 0
        self.bytes = 0
        self.max_bytes = max_bytes
        self.module_state = module_state

    def encode(self, value: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise ValueTooLarge(f"more than {MAX_ITEMS} items")
        if depth > MAX_DEPTH:
            raise ValueTooLarge(f"nested deeper than {MAX_DEPTH} levels")
        if value is None or type(value) in (bool, int, str):
            return value
        if type(value) is float:
            return value if math.isfinite(value) else {"t": "float", "value": repr(value)}
        if type(value) is list:
            return [self.encode(item, depth + 1) for item in value]
        if type(value) is tuple:
            return {"t": "tuple", "items": [self.encode(item, depth + 1) for item in value]}
        if type(value) is dict:
            pairs = [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()]
            return {"t": "dict", "items": pairs}
        return self._encode_library_value(value, depth)

    def _encode_library_value(self, value: Any, depth: int) -> Any:
        import sys

        torch = sys.modules.get("torch")
        numpy = sys.modules.get("numpy")
        if torch is not None:
            if isinstance(value, torch.Tensor):
                return self._tensor(value, torch)
            if isinstance(value, torch.dtype):
                return {"t": "dtype", "name": str(value).removeprefix("torch.")}
            if isinstance(value, torch.device):
                return {"t": "device", "name": str(value)}
            if isinstance(value, torch.Size):
                return {"t": "size", "items": [int(n) for n in value]}
            if isinstance(value, torch.nn.Module):
                return self._module(value, torch)
        if numpy is not None:
            if isinstance(value, numpy.ndarray) and value.dtype.kind in "biufc":
                import torch as torch_for_arrays

                self._count_bytes(value.nbytes)
                index = self._add(torch_for_arrays.from_numpy(numpy.array(value, order="C", copy=True)))
                return {
                    "t": "ndarray",
                    "index": index,
                    "shape": [int(n) for n in value.shape],
                    "dtype": str(value.dtype),
                }
            if isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
                return {
                    "t": "npscalar",
                    "dtype": str(value.dtype),
                    "value": self.encode(value.item(), depth + 1),
                }
        return {"t": "object", "type": _type_name(value), "repr": _safe_repr(value)}

    def _tensor(self, value: Any, torch: Any) -> dict[str, Any]:
        plain = value.detach().as_subclass(torch.Tensor)
        self._count_bytes(plain.numel() * plain.element_size())  # before the copy: an expand() is small until copied
        index = self._add(plain.to("cpu").clone(memory_format=torch.contiguous_format))
        return {
            "t": "tensor",
            "index": index,
            "shape": [int(n) for n in plain.shape],
            "dtype": str(plain.dtype).removeprefix("torch."),
            "device": str(value.device),
            "requires_grad": bool(value.requires_grad),
            "subclass": None if type(value) is torch.Tensor else _type_name(value),
        }

    def _module(self, module: Any, torch: Any) -> dict[str, Any]:
        parameters = [[name, [int(n) for n in p.shape], bool(p.requires_grad)] for name, p in module.named_parameters()]
        state = {}
        if self.module_state:
            state = {name: self._tensor(t, torch) for name, t in module.state_dict().items()}
        devices = sorted({str(p.device) for p in module.parameters()})
        return {
            "t": "module",
            "type": _type_name(module),
            "training": bool(module.training),
            "parameters": parameters,
            "state": state,
            "devices": devices,
            "children": [[name, _type_name(child)] for name, child in module.named_children()],
            "repr": _safe_repr(module, 20000),
        }

    def _add(self, tensor: Any) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def _count_bytes(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.max_bytes:
            raise ValueTooLarge(f"{self.bytes} bytes of tensor data, more than {self.max_bytes}")


def pack(value: Any, *, max_bytes: int, module_state: bool = True) -> str:
    """Encode a value as one JSON text, tensors inline as a base64 torch.save blob."""
    encoder = Encoder(max_bytes=max_bytes, module_state=module_state)
    tree = encoder.encode(value)
    blob = b""
    if encoder.tensors:
        import torch

        buffer = io.BytesIO()
        torch.save(encoder.tensors, buffer)
        blob = buffer.getvalue()
    return json.dumps({"tree": tree, "blob": base64.b64encode(blob).decode("ascii")})


def text_limit(max_bytes: int) -> int:
    """The longest text `pack` makes for `max_bytes` of tensor data (base64 and the tree)."""
    return max_bytes * 4 // 3 + 1_000_000


def load_json(text: str) -> Any:
    """`json.loads`, refusing before parsing a text whose lists and objects
    would cost far more memory than the text (`[[],[],...]` is ~20 bytes per
    character once parsed) or nest past the parser's recursion limit."""
    if text.count("[") + text.count("{") > MAX_CONTAINERS:
        raise ValueTooLarge(f"more than {MAX_CONTAINERS} lists and objects")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueTooLarge("nested too deeply") from None


def unpack(text: str, *, max_bytes: int, rebuild: dict[str, Callable[..., Any]] | None = None) -> Any:
    """Decode `pack`'s output. `rebuild` maps a tag ('module', 'object') to a constructor."""
    if len(text) > text_limit(max_bytes):
        raise ValueTooLarge(f"{len(text)} characters, more than allowed")
    document = load_json(text)
    if type(document) is not dict or type(document.get("blob")) is not str:
        raise ValueError("not a packed value")
    blob = base64.b64decode(document["blob"], validate=True)
    declared = _tensor_nodes(document.get("tree"))
    tensors: list[Any] = []
    if blob or declared:
        import torch

        if sum(_declared_bytes(node, torch) for node in declared) > max_bytes:
            raise ValueTooLarge(f"tensors declared larger than {max_bytes} bytes")
        _check_archive(blob)
        tensors = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
        _check_loaded(tensors, len(declared), max_bytes, torch)
    return _Decoder(tensors, rebuild or {}).decode(document["tree"], 0)


def _tensor_nodes(tree: Any) -> list[dict[str, Any]]:
    """Every tensor and array node of a tree (modules' state included), found
    without recursion so that a deep tree cannot exhaust the stack."""
    found: list[dict[str, Any]] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if type(node) is list:
            pending.extend(node)
        elif type(node) is dict:
            if node.get("t") in ("tensor", "ndarray"):
                found.append(node)
            else:
                pending.extend(node.values())
    return found


def _declared_bytes(node: dict[str, Any], torch: Any) -> int:
    """What a tensor node says it holds (shape x item size), checked before anything is loaded."""
    shape = node.get("shape")
    if type(shape) is not list or len(shape) > 64 or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError("a tensor without a valid shape")
    if node["t"] == "ndarray":
        import numpy

        array_dtype = numpy.dtype(str(node.get("dtype")))
        if array_dtype.kind not in "biufc":
            raise ValueError(f"unexpected array dtype {array_dtype}")
        itemsize = int(array_dtype.itemsize)
    else:
        tensor_dtype = getattr(torch, str(node.get("dtype")), None)
        if not isinstance(tensor_dtype, torch.dtype):
            raise ValueError(f"unknown dtype {node.get('dtype')!r}")
        itemsize = int(tensor_dtype.itemsize)
    return math.prod(shape) * itemsize


def _check_archive(blob: bytes) -> None:
    """The blob must be what `torch.save` writes: a zip of stored records. A
    compressed record could inflate far past the bytes received, overlapping
    records could name the same bytes many times, and the legacy format
    allocates whatever its header declares; each is refused before loading."""
    import zipfile

    if not blob.startswith(b"PK\x03\x04"):
        raise ValueError("the tensor blob is not a torch.save archive")
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise ValueError(f"the tensor blob is not a readable archive: {error}") from None
    if len(records) > _BLOB_RECORDS:
        raise ValueTooLarge(f"{len(records)} records in the tensor blob")
    if any(r.compress_type != zipfile.ZIP_STORED or r.file_size != r.compress_size for r in records):
        raise ValueError("the tensor blob has compressed records")
    if sum(r.file_size for r in records) > len(blob):
        raise ValueTooLarge("the tensor blob's records claim more bytes than it has")


def _check_loaded(tensors: Any, declared: int, max_bytes: int, torch: Any) -> None:
    """Each tensor loaded is plain, dense and contiguous, alone on a storage of
    exactly its size: no stride-0 `expand()` that copies into gigabytes, no
    views sharing one storage, no sparse or quantized layout."""
    if type(tensors) is not list or len(tensors) != declared:
        raise ValueError("the tensor blob does not hold the tensors the tree declares")
    storages: set[int] = set()
    total = 0
    for tensor in tensors:
        if type(tensor) is not torch.Tensor or tensor.layout != torch.strided or tensor.is_quantized:
            raise ValueError("the tensor blob holds something other than plain tensors")
        size = tensor.numel() * tensor.element_size()
        storage = tensor.untyped_storage()
        if not tensor.is_contiguous() or tensor.storage_offset() != 0 or storage.nbytes() != size:
            raise ValueError("a tensor in the blob is a view (strides or a storage not its own)")
        if size and storage.data_ptr() in storages:
            raise ValueError("tensors in the blob share a storage")
        storages.add(storage.data_ptr())
        total += size
    if total > max_bytes:
        raise ValueTooLarge(f"{total} bytes of tensor data, more than {max_bytes}")


class _Decoder:
    def __init__(self, tensors: list[Any], rebuild: dict[str, Callable[..., Any]]) -> None:
        self.tensors = tensors
        self.used: set[int] = set()
        self.rebuild = rebuild

    def decode(self, node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH + 2:
            raise ValueTooLarge("nested too deeply")
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [self.decode(item, depth + 1) for item in node]
        if type(node) is not dict:
            raise ValueError(f"unexpected node {type(node).__name__}")
        tag = node.get("t")
        if tag == "tuple":
            return tuple(self.decode(item, depth + 1) for item in node["items"])
        if tag == "dict":
            return {self._key(k, depth): self.decode(v, depth + 1) for k, v in node["items"]}
        if tag == "float":
            return float(node["value"]) if node["value"] in ("nan", "inf", "-inf") else math.nan
        if tag == "tensor":
            return self._tensor(node)
        if tag == "ndarray":
            import numpy

            array = self._tensor_at(node).numpy()
            if array.dtype != numpy.dtype(node["dtype"]):
                raise ValueError("an array's dtype is not the one declared")
            return array
        if tag == "npscalar":
            import numpy

            scalar_dtype = numpy.dtype(node["dtype"])
            value = self.decode(node["value"], depth + 1)
            if scalar_dtype.kind not in "biuf" or type(value) not in (bool, int, float):
                raise ValueError("not a NumPy number")  # numpy.void(10**9) would be a gigabyte
            return scalar_dtype.type(value)
        if tag in ("dtype", "device", "size"):
            import torch

            if tag == "dtype":
                dtype = getattr(torch, str(node["name"]), None)
                if not isinstance(dtype, torch.dtype):
                    raise ValueError(f"unknown dtype {node['name']!r}")
                return dtype
            if tag == "device":
                return torch.device(str(node["name"]))
            return torch.Size([int(n) for n in node["items"]])
        if tag == "module":
            state = {str(k): self._tensor(v) for k, v in node["state"].items()}
            fields = {**node, "state": state}
            return self.rebuild["module"](fields) if "module" in self.rebuild else fields
        if tag == "object":
            return self.rebuild["object"](node) if "object" in self.rebuild else node
        raise ValueError(f"unknown tag {tag!r}")

    def _key(self, node: Any, depth: int) -> Any:
        key = self.decode(node, depth + 1)
        try:
            hash(key)
        except TypeError:
            raise ValueError("unhashable dict key") from None
        return key

    def _tensor_at(self, node: dict[str, Any]) -> Any:
        """The tensor a node names, once: a tree naming one tensor a thousand
        times would otherwise copy it a thousand times (to an array, to a GPU)."""
        index = node["index"]
        if type(index) is not int or not 0 <= index < len(self.tensors):
            raise ValueError("tensor index out of range")
        if index in self.used:
            raise ValueError("a tensor is named twice")
        self.used.add(index)
        tensor = self.tensors[index]
        if list(tensor.shape) != node["shape"]:
            raise ValueError("a tensor's shape is not the one declared")
        return tensor

    def _tensor(self, node: dict[str, Any]) -> Any:
        import torch

        tensor = self._tensor_at(node)
        if str(tensor.dtype).removeprefix("torch.") != node["dtype"]:
            raise ValueError("a tensor's dtype is not the one declared")
        device = torch.device(str(node.get("device", "cpu")))
        if device.type == "cuda" and torch.cuda.is_available():
            tensor = tensor.to(device)
        if node.get("requires_grad") and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor


# ---- kernel side: only ever executed inside the student's kernel -------------


def serve(request_text: str) -> None:
    """Answer one bridge request in the kernel and publish the reply as display data."""
    from IPython import get_ipython
    from IPython.display import publish_display_data

    publish_display_data({MIME: answer(request_text, get_ipython().user_ns)})  # type: ignore[no-untyped-call]


def answer(request_text: str, namespace: dict[str, Any]) -> str:
    """The reply to one bridge request against `namespace`, as JSON text: the
    kernel's (`serve`), or a live namespace's for the in-process student."""
    request = json.loads(request_text)
    reply: dict[str, Any] = {"nonce": request["nonce"]}
    try:
        value = _perform(request, namespace)
        packed = pack(value, max_bytes=request["max_bytes"], module_state=request.get("module_state", True))
        if len(packed) > text_limit(request["max_bytes"]):  # a long string: the grader would refuse it unread
            raise ValueTooLarge(f"{len(packed)} characters, more than allowed")
        reply.update(value=packed, ok=True)
    except _Missing as missing:
        reply.update(ok=False, kind="missing", name=str(missing.args[0]))
    except ValueTooLarge as error:
        reply.update(ok=False, kind="too-large", message=str(error))
    except BaseException as error:  # the student's code may raise anything, SystemExit too
        if type(error).__name__ == STOP:  # the in-process student's timeout: not the student's to answer
            raise
        reply.update(ok=False, kind="raised", exception=type(error).__name__, message=_safe_message(error))
    return json.dumps(reply)


class _Missing(Exception):
    pass


def _safe_message(error: BaseException) -> str:
    try:
        return str(error)[:1000]
    except BaseException:
        return "<message unavailable>"


def _perform(request: dict[str, Any], namespace: dict[str, Any]) -> Any:
    arguments = unpack(request["args"], max_bytes=request["max_bytes"]) if request.get("args") else ((), {})
    positional, keywords = arguments
    operation = request["op"]
    if operation == "fetch":
        if request["name"] not in namespace:
            raise _Missing(request["name"])
        return namespace[request["name"]]
    if operation == "call":
        if request["name"] not in namespace:
            raise _Missing(request["name"])
        return namespace[request["name"]](*positional, **keywords)
    if operation == "probe":
        scope = dict(namespace)
        scope["inputs"] = keywords
        try:
            exec(compile(request["code"], "<check probe>", "exec"), scope)
        except NameError as error:
            if error.name is not None and error.name not in scope:
                raise _Missing(error.name) from None
            raise
        return scope.get("result")
    if operation == "figures":
        import sys

        recorder = sys.modules.get(FIGURES_MODULE)
        return recorder.snapshot() if recorder is not None else {"installed": False}
    raise ValueError(f"unknown operation {operation!r}")
