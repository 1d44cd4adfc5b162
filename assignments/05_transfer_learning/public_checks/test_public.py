"""Public checks for 05_transfer_learning: what the notebook itself can see.

Students run these with `autograder check`; grading runs them too, together
with hidden checks on FashionMNIST pictures the notebook never sees. Pictures
travel into the kernel as uint8 arrays; the accuracy is computed here from the
logits the student's `model` gives for them, never taken from the notebook.
"""

import numbers

import pytest
import torch

from autograder.assets import read_idx
from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

EPOCHS = 3
VAL_SAMPLES = 250
SIZES = range(32, 225)  # pixels per side the network may be given

PREPROCESS = """
from PIL import Image as _Image
result = [preprocess(_Image.fromarray(_a)) for _a in inputs["images"]]
"""

# The trained model's logits for pictures sent from here, each through the
# notebook's own `preprocess`, in evaluation mode; the model's mode is restored.
LOGITS = """
import torch as _torch
from PIL import Image as _Image
_device = next(model.parameters()).device
_was_training = model.training
model.eval()
try:
    with _torch.inference_mode():
        _batch = _torch.stack([preprocess(_Image.fromarray(_a)) for _a in inputs["images"]])
        result = model(_batch.to(_device)).float().cpu()
finally:
    model.train(_was_training)
"""


def validation_pictures(data):
    """The notebook's `val_subset`: the first VAL_SAMPLES pictures of the public test split."""
    raw = data["fashion-mnist"].public / "FashionMNIST" / "raw"
    images, labels = read_idx(raw / "t10k-images-idx3-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte")
    return images[:VAL_SAMPLES], torch.as_tensor(labels[:VAL_SAMPLES].astype("int64"))


@question("q1")
@points(1)
def test_preprocess_shape_and_dtype(student, data):
    images, _ = validation_pictures(data)
    (tensor,) = student.probe(PREPROCESS, images=[images[0]])
    assert isinstance(tensor, torch.Tensor), "`preprocess(image)` should return a tensor"
    size = tuple(tensor.shape)
    assert len(size) == 3 and size[0] == 3 and size[1] == size[2], (
        f"`preprocess(image)` should have shape (3, IMAGE_SIZE, IMAGE_SIZE), not {size}"
    )
    assert size[1] in SIZES, f"`preprocess` should give 32 to 224 pixels per side, not {size[1]}"
    assert tensor.dtype == torch.float32, f"`preprocess(image)` should be float32, not {tensor.dtype}"


@question("q2")
@points(1)
def test_new_head_for_ten_classes(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be the ResNet18 network (an `nn.Module`)"
    assert model.type.endswith(".ResNet"), f"`model` should be a torchvision ResNet, not {model.type}"
    head = {name: (shape, trainable) for name, shape, trainable in model.parameters if name.startswith("fc.")}
    assert ("fc", "torch.nn.modules.linear.Linear") in model.children and set(head) == {"fc.weight", "fc.bias"}, (
        "`model.fc` should be an `nn.Linear`"
    )
    assert head["fc.weight"][0] == (10, 512), (
        f"`model.fc` should map 512 features to 10 classes, not {head['fc.weight'][0][::-1]}"
    )
    assert head["fc.weight"][1] and head["fc.bias"][1], "the new head's parameters should require gradients"


@question("q3")
@points(1)
def test_loss_lists_have_one_number_per_epoch(student):
    for name in ("train_losses", "val_losses"):
        losses = student.fetch(name)
        assert isinstance(losses, list), f"`{name}` should be a list"
        assert len(losses) == EPOCHS, f"`{name}` should hold {EPOCHS} numbers, one per epoch, not {len(losses)}"
        assert all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in losses), (
            f"`{name}` should hold Python numbers (`loss.item()`)"
        )


@question("q4")
@points(1)
def test_accuracy_on_the_validation_pictures(student, data, thresholds):
    threshold = thresholds["accuracy"]
    images, labels = validation_pictures(data)
    logits = student.probe(LOGITS, images=images)
    assert isinstance(logits, torch.Tensor) and logits.shape == (len(labels), 10), (
        "`model` should give 10 logits per picture"
    )
    accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
    assert accuracy >= threshold, (
        f"`model` classifies {accuracy:.0%} of the validation pictures correctly, under {threshold:.0%}"
    )
