"""What train, score, eval and serve share: model loading, reading rewards, packing, batching.

No Trainer, no PEFT and no command lives here; `data` is below this layer and nothing above it is
imported (tests/unit/test_layering.py holds the rule).
"""
