"""Policies from config dicts and back, so that a slot's policy can be stored as JSON."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Final

from penchant.bandits.base import Policy
from penchant.bandits.linear import LinearThompson, LinUCB
from penchant.bandits.simple import UCB1, BetaThompson, EpsilonGreedy
from penchant.errors import InvalidInput

#: Every policy by its config name.
POLICIES: Final[dict[str, type[Policy]]] = {
    cls.name: cls for cls in (EpsilonGreedy, UCB1, BetaThompson, LinUCB, LinearThompson)
}


def make_policy(config: Mapping[str, object]) -> Policy:
    """A policy from its config, e.g. `{"name": "linucb", "alpha": 0.5}`.

    Args:
        config: `name` (one of `POLICIES`) and any of that policy's hyperparameters; those
            left out take their defaults.

    Returns:
        A policy whose hyperparameters have been checked.

    Raises:
        InvalidInput: not a mapping, an unknown name or key, or a hyperparameter of the
            wrong type or out of range; the field is `policy.<key>`.
    """
    if not isinstance(config, Mapping):
        raise InvalidInput("policy: must be a mapping with a name", field="policy")
    name = config.get("name")
    known = ", ".join(sorted(POLICIES))
    if not isinstance(name, str) or name not in POLICIES:
        raise InvalidInput(
            f"policy.name: must be one of {known}, got {name!r}", field="policy.name"
        )
    cls = POLICIES[name]
    allowed = cls.param_names()
    params: dict[str, object] = {}
    for key, value in config.items():
        if key == "name":
            continue
        if key not in allowed:
            field = f"policy.{key}"
            choices = ", ".join(allowed) or "none"
            raise InvalidInput(
                f"{field}: not a hyperparameter of {name} (it takes {choices})", field=field
            )
        params[str(key)] = value
    policy = cls(**params)
    policy.check()
    return policy


def policy_config(policy: Policy) -> dict[str, object]:
    """The JSON-safe config of a policy, that `make_policy` turns back into an equal policy.

    Raises:
        InvalidInput: the policy's hyperparameters do not pass its `check()`.
    """
    policy.check()
    out: dict[str, object] = {"name": policy.name}
    for key, value in policy.get_params().items():
        # check() has ensured numbers; numpy scalars become plain ints and floats for JSON
        if isinstance(value, numbers.Integral):
            out[key] = int(value)
        elif isinstance(value, numbers.Real):
            out[key] = float(value)
        else:  # a hyperparameter some policy takes that is not a number
            out[key] = value
    return out
