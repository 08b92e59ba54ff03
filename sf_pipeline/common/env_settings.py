"""Settings declared once: a pydantic model whose every field carries its environment variable, default,
validation and meaning (``setting``). The Dagster resources inherit these fields (the same declaration is
their config schema, set with ``EnvVar``); the command line and the data path read them with ``from_env``
without importing Dagster; docs/configuration.md is generated from them.

Not pydantic-settings' ``BaseSettings``: its constructor reads the environment itself, which a Dagster
resource must leave to ``EnvVar`` (read when a run starts, kept out of the UI)."""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, Field, ValidationError, model_validator

from ..errors import SettingsError

BOUNDS = {"ge": operator.ge, "gt": operator.gt, "lt": operator.lt, "le": operator.le}


def setting(default: Any, variable: str | None, meaning: str, *, secret: bool = False, **bounds: float) -> Any:
    """A field with its variable (None: set only in Dagster's run config), its meaning, and its bounds (``ge``,
    ``gt``, ``lt``, ``le``). ``None`` as a default means "derived" (from the pod's memory, from the org).
    ``secret`` keeps the value out of the model's ``repr``.

    Bounds are checked by ``EnvSettings`` rather than given to pydantic as constraints: a Dagster resource is
    built with ``EnvVar.int`` placeholders, which a pydantic ``ge=1`` refuses before the run resolves them."""
    extra: dict[str, Any] = {"env": variable} if variable else {}
    if bounds:
        extra["bounds"] = {name: bounds[name] for name in BOUNDS if name in bounds}
    return Field(default=default, description=meaning, json_schema_extra=extra or None, repr=not secret)


class EnvSettings(BaseModel):
    """A group of settings of one concern, each field made with ``setting``."""

    @model_validator(mode="before")
    @classmethod
    def _within_bounds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            extra, value = info.json_schema_extra, data.get(name)
            if not isinstance(extra, dict) or "bounds" not in extra or value is None:
                continue
            if type(value) is str:  # from the environment
                try:
                    value = float(value)
                except ValueError:
                    continue  # pydantic's own complaint names it
            elif type(value) not in (int, float):
                continue  # a Dagster EnvVar placeholder: checked when the run resolves it
            for op, bound in extra["bounds"].items():  # type: ignore[union-attr]
                if not BOUNDS[op](value, bound):
                    sign = {"ge": ">=", "gt": ">", "lt": "<", "le": "<="}[op]
                    raise ValueError(f"{name} must be {sign} {bound}")
        return data

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> its environment variable, in declaration order."""
        out = {}
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get("env"):
                out[name] = str(extra["env"])
        return out

    @classmethod
    def variable(cls, name: str) -> str:
        return cls.variables()[name]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """The settings from the environment (a variable unset or empty keeps the default), validated; an
        invalid value raises ``SettingsError`` naming its variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            name: env[var].strip() for name, var in cls.variables().items() if env.get(var, "").strip()
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise settings_error(cls, exc, values) from None


def settings_error(cls: type[EnvSettings], exc: ValidationError, values: Mapping[str, Any]) -> SettingsError:
    """pydantic's first complaint, said with the variable (or field) it is about and the value given."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    if not name:  # a bound checked after the fields were parsed: "<field> must be ..."
        name = next((n for n in cls.model_fields if str(error["msg"]).startswith(f"Value error, {n} ")), "")
    label = cls.variables().get(name, name or cls.__name__)
    given = f", got {values[name]!r}" if name in values else ""
    return SettingsError(f"{label}: {error['msg']}{given}")
