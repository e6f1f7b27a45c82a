"""Building blocks shared by every domain's typed configuration."""

import hashlib
import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# A share or chance: validated to lie in [0, 1].
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class FrozenModel(BaseModel):
    """Immutable config section that rejects unknown fields (so a typo names the field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def scenario_key(label: str, payload: object) -> str:
    """Return ``<label>-<10 hex digits>``: a short, stable name for a scenario in the store.

    The digits are the SHA-1 of ``payload`` as JSON with sorted keys, so the same seed
    and configuration always name the same folder, and any change of a number names a
    new one (outputs of different configurations never mix).
    """
    blob = json.dumps(payload, sort_keys=True)
    return f"{label}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"
