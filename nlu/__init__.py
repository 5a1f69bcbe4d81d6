"""Transformer NLU: text to a Rasa-shaped parse (intent ranking with honest confidence, entities)."""

from nlu.context import DialogueContext, mine_contexts, render_context
from nlu.duckling import DucklingConfig, DucklingEntityExtractor
from nlu.errors import NLUError, NLUModelError, NLUTrainingError
from nlu.interpreter import NLUInterpreter, load_interpreter
from nlu.training import TrainingSet, train_pipeline
from nlu.types import Entity, Example, IntentScore, Interpreter, ParseResult

__all__ = [
    "DialogueContext",
    "DucklingConfig",
    "DucklingEntityExtractor",
    "Entity",
    "Example",
    "IntentScore",
    "Interpreter",
    "NLUError",
    "NLUInterpreter",
    "NLUModelError",
    "NLUTrainingError",
    "ParseResult",
    "TrainingSet",
    "load_interpreter",
    "mine_contexts",
    "render_context",
    "train_pipeline",
]
