"""Model loading: captioner, detector, segmenter, CLIP scorer, prompt writers, editors."""
