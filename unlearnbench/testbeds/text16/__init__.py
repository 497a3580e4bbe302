"""The text16 testbed: coloured 16x16 digits with captions, for text-to-image unlearning."""
