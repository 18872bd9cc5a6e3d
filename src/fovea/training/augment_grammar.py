"""ECVL augmentation strings: the grammar, the parameter table and the parser, with no image library.

The grammar, the augmentations and the checks are those of reference/dataset-format-and-augmentations.md §2.
A line scanner and parser build a small tree of `Augmentation`/`Container` nodes; a spec table (augmentation ->
parameters with kind, default and domain check) validates each node. Every problem is an `AugmentationError`
reading "line N: <Name>: <problem>"; the caller prefixes the property name.

Nothing here imports albumentations (or OpenCV): a serving-only install checks the strings users send, and the
`train` extra's `augmentations` module turns a tree into a pipeline.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SEQUENTIAL = "SequentialAugmentationContainer"
ONE_OF = "OneOfAugmentationContainer"
END = "end"


class AugmentationError(ValueError):
    """Message like "line 4: AugRotate: parameter 'angle' must be a range [min,max]" (no property name)."""


@dataclass(frozen=True)
class Augmentation:
    name: str
    params: dict[str, Any]  # every parameter, defaults filled in: range/vector -> tuple, number -> float, string
    line: int


@dataclass
class Container:
    kind: str  # SEQUENTIAL or ONE_OF
    p: float  # 1.0 for a sequence
    children: list[Node] = field(default_factory=list)
    line: int = 0


Node = Augmentation | Container


# ------------------------------------------------------------------------------------------------ spec table

# The names the strings may use; the builder maps each to OpenCV's flag.
INTERP_NAMES = ("linear", "nearest", "cubic", "area", "lanczos4")
BORDER_NAMES = ("constant", "replicate", "reflect", "reflect_101", "reflect101", "wrap")

Check = Callable[[Any], str | None]  # value -> problem (without the "parameter 'x'" prefix), or None


@dataclass(frozen=True)
class Param:
    kind: str  # "R" range, "V" vector, "N" number, "S" string, "NV" number or vector
    required: bool = False
    default: Any = None
    check: Check | None = None


_ACCEPTS = {"R": ("range",), "V": ("vector",), "N": ("number",), "S": ("string",), "NV": ("number", "vector")}
_KIND_TEXT = {
    "R": "a range [min,max]",
    "V": "a vector (a,b,...)",
    "N": "a number",
    "S": 'a string in double quotes ("...")',
    "NV": "a number or a vector (a,b,...)",
}


def _values(v: Any) -> tuple[float, ...]:
    return v if isinstance(v, tuple) else (v,)


def _unit(v: Any) -> str | None:
    return None if all(0 <= x <= 1 for x in _values(v)) else "must be between 0 and 1"


def _positive_range(v: tuple[float, float]) -> str | None:
    return None if v[0] >= 0 and v[1] > 0 else "must have min >= 0 and max > 0"


def _gamma(v: tuple[float, float]) -> str | None:
    return None if v[0] > 0 else "must have min > 0"


def _steps(v: tuple[float, float]) -> str | None:
    return None if v[0] >= 1 else "must have min >= 1"


def _size(v: tuple[float, ...]) -> str | None:
    ok = len(v) in (2, 3) and all(x > 0 and x == int(x) for x in v)
    return None if ok else "must be 2 (or 3, for volumes) positive integers (width,height)"


def _scales(v: tuple[float, ...]) -> str | None:
    if len(v) not in (2, 3):
        return "must have 2 (or 3, for volumes) entries (x,y)"
    return None if all(x > 0 for x in v) else "entries must be > 0"


def _greater_than_zero(v: Any) -> str | None:
    return None if all(x > 0 for x in _values(v)) else "must be > 0"


def _grid_limit(v: tuple[float, float]) -> str | None:
    # A step of 1 + d must stay positive; albumentations enforces [-1, 1], so say so at request time.
    return None if v[0] >= -1 and v[1] <= 1 else "must be within [-1,1]"


def _point(v: tuple[float, ...]) -> str | None:
    return None if len(v) == 2 else "must have 2 entries (x,y)"


def _nonzero(v: float) -> str | None:
    return None if v != 0 else "must not be 0"


def _channels(v: Any) -> str | None:
    return None if len(_values(v)) <= 4 else "must have at most 4 entries (one per channel)"


def _std(v: Any) -> str | None:
    return _channels(v) or _greater_than_zero(v)


def _interp(v: str) -> str | None:
    return None if v in INTERP_NAMES else f"must be one of {', '.join(map(repr, INTERP_NAMES))}"


def _border(v: str) -> str | None:
    if v == "transparent":
        return "cannot be 'transparent' (the warps do not support it); use one of " + ", ".join(map(repr, BORDER_NAMES))
    return None if v in BORDER_NAMES else f"must be one of {', '.join(map(repr, BORDER_NAMES))}"


_PROB_N = Param("N", True, check=_unit)
_PROB_R = Param("R", True, check=_unit)
_FLIP = {"p": Param("N", False, 0.5, _unit)}
_INTERPS = {"interp": Param("S", False, "linear", _interp), "gt_interp": Param("S", False, "nearest", _interp)}
_WARP = {
    "interp": Param("S", False, "linear", _interp),
    "border_type": Param("S", False, "reflect_101", _border),
    "border_value": Param("N", False, 0.0),
}
_NOISE = {"p": _PROB_R, "per_channel": _PROB_N}
_SCALE_NEW = {"new_min": Param("N", True), "new_max": Param("N", True)}

SPEC: dict[str, dict[str, Param]] = {
    "AugRotate": {
        "angle": Param("R", True),
        "center": Param("V", False, None, _point),
        "scale": Param("N", False, 1.0, _greater_than_zero),
        **_INTERPS,
    },
    "AugResizeDim": {"dims": Param("V", True, check=_size), **_INTERPS},
    "AugResizeScale": {"scale": Param("V", True, check=_scales), **_INTERPS},
    "AugFlip": _FLIP,
    "AugMirror": _FLIP,
    "AugTranspose": _FLIP,
    "AugGaussianBlur": {"sigma": Param("R", True, check=_positive_range)},
    "AugAdditiveLaplaceNoise": {"std_dev": Param("R", True, check=_positive_range)},
    "AugAdditivePoissonNoise": {"lambda": Param("R", True, check=_positive_range)},
    "AugGammaContrast": {"gamma": Param("R", True, check=_gamma)},
    "AugBrightness": {"beta": Param("R", True)},
    "AugCoarseDropout": {"p": _PROB_R, "drop_size": _PROB_R, "per_channel": _PROB_N},
    "AugGridDistortion": {
        "num_steps": Param("R", True, check=_steps),
        "distort_limit": Param("R", True, check=_grid_limit),
        **_WARP,
    },
    "AugElasticTransform": {
        "alpha": Param("R", True, check=_positive_range),
        "sigma": Param("R", True, check=_positive_range),
        **_WARP,
    },
    "AugOpticalDistortion": {"distort_limit": Param("R", True), "shift_limit": Param("R", True), **_WARP},
    "AugSalt": _NOISE,
    "AugPepper": _NOISE,
    "AugSaltAndPepper": _NOISE,
    "AugNormalize": {"mean": Param("NV", True, check=_channels), "std": Param("NV", True, check=_std)},
    "AugCenterCrop": {"size": Param("V", False, None, _size)},
    "AugRandomCrop": {
        "size": Param("V", True, check=_size),
        "border_type": Param("S", False, "constant", _border),
        "border_value": Param("N", False, 0.0),
    },
    "AugToFloat32": {"divisor": Param("N", False, 1.0, _nonzero), "divisor_gt": Param("N", False, 1.0, _nonzero)},
    "AugDivBy255": {},
    "AugScaleTo": _SCALE_NEW,
    "AugScaleFromTo": {"old_min": Param("N", True), "old_max": Param("N", True), **_SCALE_NEW},
}
CONTAINER_SPEC: dict[str, dict[str, Param]] = {SEQUENTIAL: {}, ONE_OF: {"p": _PROB_N}}


def _cross_check(name: str, params: dict[str, Any]) -> str | None:
    """Checks that involve two parameters of one augmentation."""
    if name == "AugNormalize":
        mean, std = params["mean"], params["std"]
        if isinstance(mean, tuple) != isinstance(std, tuple):
            return "parameters 'mean' and 'std' must both be numbers or both be vectors"
        if isinstance(mean, tuple) and len(mean) != len(std):
            return f"parameters 'mean' and 'std' must have the same length ({len(mean)} != {len(std)})"
    if name == "AugScaleFromTo" and params["old_min"] >= params["old_max"]:
        return "parameter 'old_min' must be < 'old_max'"
    if name in ("AugScaleTo", "AugScaleFromTo") and params["new_min"] > params["new_max"]:
        return "parameter 'new_min' must be <= 'new_max'"
    return None


# ---------------------------------------------------------------------------------------------------- parser

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_PARAM_NAME = re.compile(r"([^\s=]+)\s*=\s*")
_KNOWN_NAMES = [*SPEC, SEQUENTIAL, ONE_OF, END]


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Line:
    """One non-blank line: the leading name and a scanner for its `name=value` parameters."""

    def __init__(self, number: int, text: str):
        self.number = number
        parts = text.split(maxsplit=1)
        self.name, self.rest = parts[0], (parts[1].strip() if len(parts) > 1 else "")

    def fail(self, problem: str) -> AugmentationError:
        return AugmentationError(f"line {self.number}: {self.name}: {problem}")

    def _number(self, text: str, pname: str) -> float:
        text = text.strip()
        if not _NUMBER.fullmatch(text):
            hint = " (strings go in double quotes)" if text and text[0].isalpha() else ""
            raise self.fail(f"parameter '{pname}': {text!r} is not a number{hint}")
        value = float(text)
        if not math.isfinite(value):
            raise self.fail(f"parameter '{pname}' must be finite, not {text!r}")
        return value

    def params(self) -> list[tuple[str, str, Any]]:
        """[(name, kind, value)] in written order; kind is "range", "vector", "number" or "string"."""
        out: list[tuple[str, str, Any]] = []
        text, i, n = self.rest, 0, len(self.rest)
        while True:
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                return out
            match = _PARAM_NAME.match(text, i)
            if not match:
                raise self.fail(f"expected name=value, found {text[i:].split()[0]!r}")
            pname, i = match.group(1), match.end()
            if i >= n:
                raise self.fail(f"parameter '{pname}' has no value")
            opening = text[i]
            if opening in "[(":
                closing = "]" if opening == "[" else ")"
                end = text.find(closing, i + 1)
                if end < 0:
                    raise self.fail(f"parameter '{pname}': unterminated '{opening}'")
                inner = text[i + 1 : end]
                if opening == "(" and not inner.strip():
                    raise self.fail(f"parameter '{pname}': empty vector")
                numbers = tuple(self._number(part, pname) for part in inner.split(","))
                if opening == "[" and len(numbers) != 2:
                    raise self.fail(f"parameter '{pname}': a range needs exactly two numbers [min,max]")
                if opening == "[" and numbers[0] > numbers[1]:
                    raise self.fail(f"parameter '{pname}': range min {numbers[0]:g} > max {numbers[1]:g}")
                out.append((pname, "range" if opening == "[" else "vector", numbers))
                i = end + 1
            elif opening == '"':
                end = text.find('"', i + 1)
                if end < 0:
                    raise self.fail(f"parameter '{pname}': unterminated string")
                out.append((pname, "string", text[i + 1 : end]))
                i = end + 1
            else:
                end = i
                while end < n and not text[end].isspace():
                    end += 1
                out.append((pname, "number", self._number(text[i:end], pname)))
                i = end
            if i < n and not text[i].isspace():
                raise self.fail(f"parameter '{pname}': unexpected {text[i:].split()[0]!r} after the value")

    def validated(self, spec: dict[str, Param]) -> dict[str, Any]:
        """The line's parameters checked against `spec` (rules 2, 3, 5), with defaults filled in."""
        given: dict[str, Any] = {}
        for pname, kind, value in self.params():
            if pname not in spec:
                if not spec:
                    raise self.fail("takes no parameters")
                raise self.fail(f"unknown parameter '{pname}'{_suggest(pname, list(spec))}")
            if pname in given:
                raise self.fail(f"parameter '{pname}' is given twice")
            param = spec[pname]
            if kind not in _ACCEPTS[param.kind]:
                raise self.fail(f"parameter '{pname}' must be {_KIND_TEXT[param.kind]}")
            problem = param.check(value) if param.check else None
            if problem:
                raise self.fail(f"parameter '{pname}' {problem}")
            given[pname] = value
        missing = [pname for pname, param in spec.items() if param.required and pname not in given]
        if missing:
            raise self.fail(f"missing required parameter '{missing[0]}'")
        return {pname: given.get(pname, param.default) for pname, param in spec.items()}


def _normalise(text: str) -> str:
    """§2.1: CRLF and CR become LF, and so does the two-character sequence backslash-n (stored defaults)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\\n", "\n")


def parse(text: str | None) -> Node | None:
    """The tree of an augmentation string, every parameter checked; None for a null or blank one.

    Raises AugmentationError. Limits only albumentations knows are checked when the builder builds the tree.
    """
    if text is None or not text.strip():
        return None
    root: Node | None = None
    stack: list[tuple[Container, _Line]] = []  # open containers, innermost last

    def close(node: Node) -> None:
        nonlocal root
        if stack:
            stack[-1][0].children.append(node)
        else:  # a second top-level element was refused when its line was read
            root = node

    for number, raw in enumerate(_normalise(text).split("\n"), start=1):
        if not raw.strip():
            continue
        line = _Line(number, raw)
        if line.name == END:
            if line.rest:
                raise line.fail(f"unexpected {line.rest.split()[0]!r} after 'end'")
            if not stack:
                raise line.fail("'end' without an open container")
            container, _ = stack.pop()
            close(container)
            continue
        if root is not None and not stack:
            raise line.fail("text after the end of the augmentation string (it must be a single element)")
        if line.name in CONTAINER_SPEC:
            params = line.validated(CONTAINER_SPEC[line.name])
            stack.append((Container(line.name, params.get("p", 1.0), [], number), line))
        elif line.name in SPEC:
            node = Augmentation(line.name, line.validated(SPEC[line.name]), number)
            problem = _cross_check(node.name, node.params)
            if problem:
                raise line.fail(problem)
            close(node)
        else:
            raise line.fail(f"unknown augmentation{_suggest(line.name, _KNOWN_NAMES)}")
    if stack:
        container, line = stack[-1]
        raise line.fail("missing 'end'")
    return root
