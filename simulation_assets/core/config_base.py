"""Building blocks shared by every domain's typed configuration."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# A share or chance: validated to lie in [0, 1].
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class FrozenModel(BaseModel):
    """Immutable config section that rejects unknown fields (so a typo names the field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
