"""Small helpers of the settings: whether a variable is given, values fit for an error
message, and the one-line reason a configuration is refused."""

from __future__ import annotations

import ipaddress
import re

from pydantic import SecretStr, ValidationError


class ConfigError(Exception):
    """Configuration that cannot work; the message names the variable to fix."""


def given(value: object) -> bool:
    """Whether a setting was given: a non-blank string or secret, or any other value but None."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None


def shown_url(value: str) -> str:
    """`value` fit for an error message: everything up to the last `@` (user:password, which
    may itself hold `/`, `#` or `@`) is masked, however malformed the URL."""
    return re.sub(r"^([A-Za-z][\w+.-]*://)?.*@", r"\1***@", value, flags=re.DOTALL)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def describe_validation_error(exc: ValidationError) -> str:
    reasons = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if loc:
            given_value = err.get("input")
            shown = (
                ""
                if "secret" in loc or "key" in loc or "token" in loc or "password" in loc
                else f" (got {given_value!r})"
            )
            if err["type"].startswith(("int_", "float_", "greater", "less", "literal", "bool_")):
                msg = f"{msg}{shown}"
            reasons.append(f"{loc.upper()}: {msg}")
        else:
            reasons.append(msg)
    return "invalid configuration: " + "; ".join(reasons)
