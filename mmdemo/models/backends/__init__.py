"""Backend loaders, one module per backend; each exports ``load(ctx) -> LoadedModel``."""
