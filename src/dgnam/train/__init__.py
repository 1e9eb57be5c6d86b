"""Training: classifiers (targets and judges), DeePSiM generators, and (later) denoising autoencoders on codes."""
