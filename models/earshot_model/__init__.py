"""earshot fingerprint model: container I/O, front-end, network, augmentation, training, export."""
