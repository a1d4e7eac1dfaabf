"""Which credentials rest, as far as this worker has heard, so that the first request a
resting credential serves after its rest tells everyone it works again.

That report (a `Cooldown` with `until` 0 on `auth.v1.events.cooldowns`) ends the
routers' probation of the credential at once and makes auth forget its streak of
refusals, so the next refusal rests it for the base time again. Only a request that
started after the rest ended counts: one already in flight when the upstream refused
proves nothing. Normal traffic pays a dict lookup, and only while something rests.
"""

from __future__ import annotations

from llmbus.bus import Bus, Delivery
from llmbus.proto import (
    AUTH_COOLDOWN_EVENTS,
    CONTROL_COOLDOWNS,
    CONTROL_COOLDOWNS_CLEARED,
    Cooldown,
    CooldownCleared,
)

__all__ = ["Rests"]

_Key = tuple[str, str, str]
"""(provider, credential, model); model "" rests every model."""


class Rests:
    def __init__(self) -> None:
        self._until: dict[_Key, float] = {}

    async def start(self, bus: Bus) -> None:
        await bus.subscribe(AUTH_COOLDOWN_EVENTS, self._on_cooldown)
        await bus.subscribe(CONTROL_COOLDOWNS, self._on_cooldown)
        await bus.subscribe(CONTROL_COOLDOWNS_CLEARED, self._on_cleared)

    def note(self, cooldown: Cooldown) -> None:
        key = (cooldown.provider, cooldown.credential, cooldown.model)
        if not cooldown.until:
            self._until.pop(key, None)
        elif cooldown.until > self._until.get(key, 0.0):
            self._until[key] = cooldown.until

    async def _on_cooldown(self, cooldown: Cooldown, _: Delivery) -> None:
        self.note(cooldown)

    async def _on_cleared(self, cleared: CooldownCleared, _: Delivery) -> None:
        for key in list(self._until):
            provider, credential, model = key
            if (
                provider == cleared.provider
                and (not cleared.credential or credential == cleared.credential)
                and (not cleared.model or model == cleared.model)
            ):
                del self._until[key]

    def resting(self, provider: str, credential: str, model: str, now: float) -> bool:
        """Whether this worker has heard of a rest of the credential (for that model, or
        for every model) that is still running at `now`: a failover skips such a step."""
        if not self._until:
            return False
        return any(
            self._until.get(key, 0.0) > now
            for key in ((provider, credential, model), (provider, credential, ""))
        )

    def recovered(self, provider: str, credential: str, model: str, started_at: float) -> list[Cooldown]:
        """The rests that a request started at `started_at` (unix seconds), answered by the
        upstream, has just ended; forgotten here, to be announced by the caller."""
        if not self._until:
            return []
        ended = []
        for key in ((provider, credential, model), (provider, credential, "")):
            until = self._until.get(key)
            if until is not None and until <= started_at:
                del self._until[key]
                ended.append(Cooldown(provider=provider, credential=credential, until=0.0, model=key[2]))
        return ended
