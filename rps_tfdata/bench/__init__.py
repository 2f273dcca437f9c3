"""The measuring tools: benchmarks, the side-by-side learning run, the parity preview, and
the seed's own ImageDataGenerator pipeline they compare against.

Not on the product path. The ImageDataGenerator parts need pillow and scipy, installed by
`pip install "rps_tfdata[bench]"`.
"""
