"""Named feature taps in network order, the one convention every backbone (UNet, DiT) follows."""

from __future__ import annotations

from collections.abc import Iterable


class NamedTaps:
    """A network's taps: `tap_names` in network order; call `index_taps()` once they are set."""

    tap_names: list[str]

    def index_taps(self) -> None:
        self._tap_order = {name: i for i, name in enumerate(self.tap_names)}

    def order_taps(self, names: Iterable[str]) -> list[str]:
        """The given tap names in network order; unknown names raise KeyError naming them."""
        names = list(dict.fromkeys(names))
        self.check_taps(names)
        return sorted(names, key=self._tap_order.__getitem__)

    def check_taps(self, names: Iterable[str]) -> set[str]:
        """The names as a set; KeyError naming those that are no tap of this network (sorted)."""
        wanted = set(names)
        if wanted - self._tap_order.keys():
            raise KeyError(", ".join(sorted(wanted - self._tap_order.keys())))
        return wanted
