"""Where assignments live, and which one a notebook belongs to.

A course folder holds `assignments/NAME/` (what students get: the template
notebook, public checks, public config) and, for instructors only,
`solutions/NAME/` (the reference notebook, hidden checks, grader-only config).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from autograder.assets import Dataset, course_datasets
from autograder.config import AssignmentConfig, load_config
from autograder.errors import UnknownAssignmentError
from autograder.intake import Submission

CONFIG_FILE = "assignment.toml"
PUBLIC_CHECKS = "public_checks"
HIDDEN_CHECKS = "hidden_checks"


@dataclass(frozen=True)
class Assignment:
    """One assignment of a course, with its resolved config."""

    name: str
    public_dir: Path
    solution_dir: Path
    config: AssignmentConfig

    @property
    def template(self) -> Path:
        return self.public_dir / f"{self.name}.ipynb"

    @property
    def solution(self) -> Path:
        return self.solution_dir / f"{self.name}.ipynb"

    @property
    def public_checks(self) -> tuple[Path, ...]:
        return tuple(sorted((self.public_dir / PUBLIC_CHECKS).glob("test_*.py")))

    @property
    def hidden_checks(self) -> tuple[Path, ...]:
        return tuple(sorted((self.solution_dir / HIDDEN_CHECKS).glob("test_*.py")))


class Course:
    """The assignments found under one course folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> Course:
        """This repository when run from a checkout, else the copy shipped in the wheel."""
        package = Path(__file__).resolve().parent
        checkout = package.parent
        if (checkout / "assignments").is_dir():
            return cls(checkout)
        return cls(package / "course")

    def datasets(self) -> dict[str, Dataset]:
        """The assets this course registers (`assignments/assets.toml`), in order."""
        return course_datasets(self.root)

    def names(self) -> list[str]:
        public = self.root / "assignments"
        if not public.is_dir():
            return []
        return sorted(p.name for p in public.iterdir() if (p / f"{p.name}.ipynb").is_file())

    def get(self, name: str) -> Assignment:
        if name not in self.names():
            known = ", ".join(self.names()) or "none"
            raise UnknownAssignmentError(f"no assignment {name!r} in {self.root} (known: {known})")
        public_dir = self.root / "assignments" / name
        solution_dir = self.root / "solutions" / name
        config = load_config(public_dir / CONFIG_FILE, solution_dir / CONFIG_FILE)
        return Assignment(name, public_dir, solution_dir, config)

    def recognise(self, submission: Submission) -> tuple[Assignment, str]:
        """The assignment a notebook answers, and how it was told (for the user to see)."""
        tagged = submission.metadata.get("autograder", {})
        if isinstance(tagged, dict) and tagged.get("assignment") in self.names():
            return self.get(tagged["assignment"]), "from the notebook's metadata"
        stem = _normalise(submission.path.stem)
        for name in self.names():
            keys = {_normalise(name), *(_normalise(a) for a in self.get(name).config.aliases)}
            if any(stem == key or stem.startswith(key) for key in keys):
                return self.get(name), f"from the file name {submission.path.name!r}"
        raise UnknownAssignmentError(
            f"{submission.path}: cannot tell which assignment this is; pass -a NAME "
            f"(known: {', '.join(self.names()) or 'none'})"
        )


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
