"""The sample photos the EfficientNet references use, under $TANDEM_HOME (what
`cargo run --release --example fetch_models` fetches): name -> path. Imported by
efficientnet.py and efficientnet_preprocess.py (run from anywhere: Python puts a script's own
folder on its path)."""

PHOTOS = {
    "chelsea": "scikit-image-0.25.2/skimage/data/chelsea.png",
    "coffee": "scikit-image-0.25.2/skimage/data/coffee.png",
    "astronaut": "scikit-image-0.25.2/skimage/data/astronaut.png",
    "motorcycle": "scikit-image-0.25.2/skimage/data/motorcycle_left.png",
    # Grayscale: decoded with channels=3 (RGB).
    "camera": "scikit-image-0.25.2/skimage/data/camera.png",
}
