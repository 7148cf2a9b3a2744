"""Feature-store integration: Redis server helpers, the Feast plugin and fast embedding paths."""
