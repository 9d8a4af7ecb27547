"""End-to-end jobs built from the layers below: the demo, the ablation, benchmarks."""
