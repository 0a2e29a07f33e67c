"""Architecture configs built from paper defaults, a named preset and explicit keys, in that order."""

from __future__ import annotations

from typing import Any

from relviz.core.errors import BadInputError


def resolve_preset(config: dict[str, Any], defaults: dict[str, Any], presets: dict[str, dict[str, Any]],
                   what: str) -> dict[str, Any]:
    """``defaults``, then ``presets[config['preset']]`` (if given), then every other non-None key of ``config``."""
    preset = config.get("preset")
    base = dict(defaults)
    if preset:
        if preset not in presets:
            raise BadInputError(f"unknown {what} preset {preset!r}; valid presets: {', '.join(presets)}")
        base.update(presets[preset])
    base.update({k: v for k, v in config.items() if k != "preset" and v is not None})
    base["preset"] = preset
    return base
