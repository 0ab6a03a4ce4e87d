"""Deep methods: one file each, a loss over the shared network, never a training loop."""
