"""Stock levels per SKU, with a reorder rule."""

from dataclasses import dataclass, field


@dataclass
class Stock:
    levels: dict[str, int] = field(default_factory=dict)
    reorder_at: int = 5
    reorder_to: int = 20

    def take(self, sku: str, quantity: int) -> None:
        have = self.levels.get(sku, 0)
        if quantity > have:
            raise ValueError(f"only {have} of {sku} in stock, {quantity} requested")
        self.levels[sku] = have - quantity

    def needs_reorder(self) -> list[str]:
        """SKUs at or below the reorder level, sorted by name."""
        return sorted(sku for sku, level in self.levels.items() if level < self.reorder_at)

    def restock_plan(self) -> dict[str, int]:
        """How many of each SKU to order to bring it back up to `reorder_to`."""
        return {sku: self.reorder_to - self.levels[sku] for sku in self.needs_reorder()}
