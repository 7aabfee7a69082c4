"""Training configs of the step-trained tasks: dataclass defaults <- a YAML file <- command-line overrides,
with the network's settings under ``model:`` merged key by key. Unknown keys are errors naming the file.

    cfg = layered_config(SegmentationTrainConfig, SegmentationModelConfig, "my.yaml", {"steps": 100})
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Dict, Mapping, Optional, Type, TypeVar

import yaml

T = TypeVar("T")
M = TypeVar("M")


def read_yaml(path: str) -> Dict[str, Any]:
    """The mapping in the YAML file ``path``; ValueError naming the file when it cannot be read, is not
    YAML or does not hold a mapping (an empty file is an empty mapping)."""
    try:
        with open(path) as f:
            loaded = yaml.safe_load(f) or {}
    except OSError as e:
        raise ValueError(f"config file {path!r} cannot be read ({e})") from e
    except yaml.YAMLError as e:
        raise ValueError(f"config file {path!r} is not valid YAML ({e})") from e
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path!r} must hold a mapping, got {type(loaded).__name__}")
    return loaded


def check_keys(cls: Type[Any], values: Mapping[str, Any], where: str, what: str = "keys") -> None:
    """ValueError naming ``where`` (e.g. "config 'my.yaml'") and the fields expected when ``values`` has keys
    that are not fields of the dataclass ``cls``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown {what} {unknown}; expected a subset of {sorted(known)}")


def from_mapping(cls: Type[M], values: Mapping[str, Any], where: str, what: str = "keys") -> M:
    """``cls(**values)`` for a dataclass ``cls``, after :func:`check_keys`."""
    check_keys(cls, values, where, what)
    return cls(**values)


def layered_config(train_cls: Type[T], model_cls: Type[Any], path: Optional[str] = None,
                   overrides: Optional[Mapping[str, Any]] = None,
                   normalize: Optional[Callable[[Dict[str, Any], str], Dict[str, Any]]] = None) -> T:
    """``train_cls(**values, model=model_cls(**model_values))`` from the defaults <- the YAML file ``path`` <-
    ``overrides`` (None values in them are ignored: "not given"); the ``model`` mappings are merged key by
    key. ``normalize(values, source)`` may rewrite each source first (e.g. an older layout). Unknown keys
    (top level or under model) raise ValueError naming the source."""
    values: Dict[str, Any] = {}
    model: Dict[str, Any] = {}
    sources = ((f"config {path!r}", read_yaml(path) if path else {}), ("overrides", dict(overrides or {})))
    top = {f.name for f in fields(train_cls)} - {"model"}  # type: ignore[arg-type]
    for source, given in sources:
        given = {k: v for k, v in given.items() if v is not None}
        if normalize is not None:
            given = normalize(given, source)
        sub = given.pop("model", None) or {}
        if not isinstance(sub, Mapping):
            raise ValueError(f"{source}: model must be a mapping of network settings, got {type(sub).__name__}")
        unknown = sorted(set(given) - top)
        if unknown:
            raise ValueError(f"{source}: unknown config keys {unknown}; expected a subset of {sorted(top | {'model'})}")
        check_keys(model_cls, sub, source, "model keys")
        model.update(sub)
        values.update(given)
    return train_cls(**values, model=from_mapping(model_cls, model, "config", "model keys"))  # type: ignore[call-arg]
