"""`rewardkit demo` and the seeded synthetic preference sets it trains on."""
