"""One recommender per file, each with its config dataclass beside it."""
from core.models.gru4rec import GRU4Rec, GRU4RecConfig
from core.models.sasrec import SASRec, SASRecConfig

BACKBONES = {"sasrec": (SASRec, SASRecConfig), "gru4rec": (GRU4Rec, GRU4RecConfig)}
