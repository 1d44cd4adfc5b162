"""Values as data across the kernel boundary: a JSON tree plus one tensor blob.

This module runs on both sides. The grader imports it; the bridge also sends
its source into the student's kernel with every request, so it must stay
self-contained: standard library at the top, torch and numpy imported lazily,
nothing from the `autograder` package. Decoding never runs code: the tree is
JSON and tensors come back through `torch.load(weights_only=True)`.

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
MAX_DEPTH = 24
MAX_ITEMS = 200_000
REPR_LIMIT = 300


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

    def __init__(self, *, module_state: bool = True) -> None:
        self.tensors: list[Any] = []
        self.items = 0
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

                index = self._add(torch_for_arrays.from_numpy(numpy.ascontiguousarray(value).copy()))
                return {"t": "ndarray", "index": index, "dtype": str(value.dtype)}
            if isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
                return {
                    "t": "npscalar",
                    "dtype": str(value.dtype),
                    "value": self.encode(value.item(), depth + 1),
                }
        return {"t": "object", "type": _type_name(value), "repr": _safe_repr(value)}

    def _tensor(self, value: Any, torch: Any) -> dict[str, Any]:
        plain = value.detach().as_subclass(torch.Tensor)
        index = self._add(plain.to("cpu").clone().contiguous())
        return {
            "t": "tensor",
            "index": index,
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


def pack(value: Any, *, max_bytes: int, module_state: bool = True) -> str:
    """Encode a value as one JSON text, tensors inline as a base64 torch.save blob."""
    encoder = Encoder(module_state=module_state)
    tree = encoder.encode(value)
    blob = b""
    if encoder.tensors:
        import torch

        size = sum(t.numel() * t.element_size() for t in encoder.tensors)
        if size > max_bytes:
            raise ValueTooLarge(f"{size} bytes of tensor data, more than {max_bytes}")
        buffer = io.BytesIO()
        torch.save(encoder.tensors, buffer)
        blob = buffer.getvalue()
    return json.dumps({"tree": tree, "blob": base64.b64encode(blob).decode("ascii")})


def unpack(text: str, *, max_bytes: int, rebuild: dict[str, Callable[..., Any]] | None = None) -> Any:
    """Decode `pack`'s output. `rebuild` maps a tag ('module', 'object') to a constructor."""
    if len(text) > max_bytes * 4 // 3 + 1_000_000:
        raise ValueTooLarge(f"{len(text)} characters, more than allowed")
    document = json.loads(text)
    blob = base64.b64decode(document["blob"], validate=True)
    tensors: list[Any] = []
    if blob:
        import torch

        tensors = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
        if not isinstance(tensors, list) or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise ValueError("tensor blob is not a list of tensors")
    return _Decoder(tensors, rebuild or {}).decode(document["tree"], 0)


class _Decoder:
    def __init__(self, tensors: list[Any], rebuild: dict[str, Callable[..., Any]]) -> None:
        self.tensors = tensors
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

            return self._tensor_at(node["index"]).numpy().astype(numpy.dtype(node["dtype"]))
        if tag == "npscalar":
            import numpy

            return numpy.dtype(node["dtype"]).type(self.decode(node["value"], depth + 1))
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

    def _tensor_at(self, index: Any) -> Any:
        if type(index) is not int or not 0 <= index < len(self.tensors):
            raise ValueError("tensor index out of range")
        return self.tensors[index]

    def _tensor(self, node: dict[str, Any]) -> Any:
        import torch

        tensor = self._tensor_at(node["index"])
        device = torch.device(str(node.get("device", "cpu")))
        if device.type == "cuda" and torch.cuda.is_available():
            tensor = tensor.to(device)
        if node.get("requires_grad") and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor


# ---- kernel side: only ever executed inside the student's kernel -------------


def serve(request_text: str) -> None:
    """Answer one bridge request and publish the reply as display data."""
    request = json.loads(request_text)
    reply: dict[str, Any] = {"nonce": request["nonce"]}
    try:
        value = _perform(request)
        reply["value"] = pack(value, max_bytes=request["max_bytes"], module_state=request.get("module_state", True))
        reply["ok"] = True
    except _Missing as missing:
        reply.update(ok=False, kind="missing", name=str(missing.args[0]))
    except ValueTooLarge as error:
        reply.update(ok=False, kind="too-large", message=str(error))
    except BaseException as error:  # the student's code may raise anything, SystemExit too
        reply.update(ok=False, kind="raised", exception=type(error).__name__, message=_safe_message(error))
    from IPython.display import publish_display_data

    publish_display_data({MIME: json.dumps(reply)})  # type: ignore[no-untyped-call]


class _Missing(Exception):
    pass


def _safe_message(error: BaseException) -> str:
    try:
        return str(error)[:1000]
    except BaseException:
        return "<message unavailable>"


def _perform(request: dict[str, Any]) -> Any:
    from IPython import get_ipython

    namespace = get_ipython().user_ns
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
    raise ValueError(f"unknown operation {operation!r}")
