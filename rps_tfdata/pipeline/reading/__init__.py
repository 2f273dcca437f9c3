"""Reading images as ImageDataGenerator reads them: listed and split in IDG's order,
screened, decoded and resized as PIL does, kept in a cache, each bad file named."""
