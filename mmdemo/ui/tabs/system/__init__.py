"""System tab: profile, device, every model's state and memory, versions; load and unload."""
