"""ImageDataGenerator's transforms in the graph: the random augmentation (one fused warp
per image) and the standardisation that follows it."""
