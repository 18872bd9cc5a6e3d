"""The inference core: model cards, engines, tasks, readers, result formats. No HTTP, no DB."""
