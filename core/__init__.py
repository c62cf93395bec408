"""SteerRec: promptable sequential recommendation (backbones, DPR, MixRec) behind one engine."""

BACKBONE_NAMES = ("sasrec", "gru4rec")  # the ID-based models; DPR steers either
MODEL_NAMES = (*BACKBONE_NAMES, "dpr", "mixrec")
DISPLAY_NAMES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "dpr": "DPR", "mixrec": "MixRec"}  # as a person reads them
# what a full engine serves, as (model, backbone): DPR once per backbone, MixRec over SASRec
SERVED = (("sasrec", "sasrec"), ("gru4rec", "gru4rec"), ("dpr", "sasrec"), ("dpr", "gru4rec"), ("mixrec", "sasrec"))
