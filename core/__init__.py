"""SteerRec: promptable sequential recommendation (backbones, DPR, MixRec) behind one engine."""
