"""The answer pipeline: visual search -> rephrase -> retrieve -> caption -> generate."""

from vlmsearch.pipeline.pipeline import Pipeline
from vlmsearch.pipeline.types import (
    Answer,
    AnswerEvent,
    Citation,
    DraftEvent,
    StageEvent,
    TokenEvent,
    TraceStep,
    VisualFacts,
)

__all__ = ["Answer", "AnswerEvent", "Citation", "DraftEvent", "Pipeline", "StageEvent", "TokenEvent", "TraceStep", "VisualFacts"]
