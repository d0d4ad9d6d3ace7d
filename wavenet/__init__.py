"""WaveNet as an image generator: causal dilated convolutions over raster-ordered pixels."""
