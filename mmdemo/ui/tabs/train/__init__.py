"""Fine-tune tab: train an adapter, watch it learn, run a bake-off, evaluate."""
