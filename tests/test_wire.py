"""The value codec: data survives the trip, and nothing in it can run code."""

from __future__ import annotations

import base64
import io
import json
import math
import pickle

import numpy as np
import pytest
import torch

from autograder import wire

LIMIT = 1 << 20


def roundtrip(value: object) -> object:
    return wire.unpack(wire.pack(value, max_bytes=LIMIT), max_bytes=LIMIT)


def test_plain_values_and_containers() -> None:
    value = {"a": [1, 2.5, "x", None, True], (1, 2): ("t", 3)}
    assert roundtrip(value) == value


def test_special_floats() -> None:
    back = roundtrip([math.nan, math.inf, -math.inf])
    assert isinstance(back, list)
    assert math.isnan(back[0]) and back[1] == math.inf and back[2] == -math.inf


def test_tensor_keeps_dtype_shape_and_grad_flag() -> None:
    tensor = torch.arange(6, dtype=torch.int16).reshape(2, 3)
    back = roundtrip(tensor)
    assert isinstance(back, torch.Tensor)
    assert back.dtype == torch.int16 and back.shape == (2, 3) and torch.equal(back, tensor)
    grad = roundtrip(torch.ones(2, requires_grad=True))
    assert isinstance(grad, torch.Tensor) and grad.requires_grad


def test_a_view_sends_only_its_own_elements() -> None:
    big = torch.zeros(1_000_000)
    text = wire.pack(big[:3], max_bytes=LIMIT)
    assert len(text) < 10_000


def test_numpy_arrays_and_scalars() -> None:
    array = np.arange(4, dtype=np.float32)
    back = roundtrip([array, np.int64(7)])
    assert isinstance(back, list)
    assert isinstance(back[0], np.ndarray) and back[0].dtype == np.float32
    assert back[1] == 7 and isinstance(back[1], np.int64)


def test_torch_descriptors() -> None:
    assert roundtrip([torch.float64, torch.device("cpu"), torch.Size([2, 3])]) == [
        torch.float64,
        torch.device("cpu"),
        torch.Size([2, 3]),
    ]


def test_module_becomes_a_description() -> None:
    back = roundtrip(torch.nn.Linear(2, 3))
    assert isinstance(back, dict)
    assert back["type"] == "torch.nn.modules.linear.Linear"
    assert back["state"]["weight"].shape == (3, 2)


def test_unknown_objects_are_described_not_rebuilt() -> None:
    class Sneaky:
        def __eq__(self, other: object) -> bool:
            return True

    back = roundtrip(Sneaky())
    assert isinstance(back, dict) and back["t"] == "object"
    assert back != 42 or back == {"t": "object"}  # a plain dict: equality is honest


def test_tensor_subclass_comes_back_as_a_plain_tensor() -> None:
    class Liar(torch.Tensor):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    back = roundtrip(torch.ones(2).as_subclass(Liar))
    assert type(back) is torch.Tensor


def test_size_bound_is_enforced() -> None:
    with pytest.raises(wire.ValueTooLarge):
        wire.pack(torch.zeros(1000), max_bytes=100)
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack("x" * 10_000_000, max_bytes=100)


def test_deep_nesting_is_refused() -> None:
    value: list[object] = []
    for _ in range(100):
        value = [value]
    with pytest.raises(wire.ValueTooLarge):
        wire.pack(value, max_bytes=LIMIT)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle ran code",))


def test_a_pickle_in_the_tensor_blob_is_refused() -> None:
    payload = io.BytesIO()
    torch.save([torch.ones(1), _Boom()], payload)
    text = json.dumps({"tree": {"t": "tensor", "index": 0}, "blob": base64.b64encode(payload.getvalue()).decode()})
    with pytest.raises(pickle.UnpicklingError):
        wire.unpack(text, max_bytes=LIMIT)


def test_unknown_tags_are_refused() -> None:
    with pytest.raises(ValueError):
        wire.unpack(json.dumps({"tree": {"t": "exec", "code": "1"}, "blob": ""}), max_bytes=LIMIT)
