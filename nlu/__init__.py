"""Transformer NLU: text to a Rasa-shaped parse (intent ranking with honest confidence, entities)."""

from nlu.errors import NLUError, NLUModelError, NLUTrainingError
from nlu.interpreter import NLUInterpreter, load_interpreter
from nlu.training import TrainingSet, train_pipeline
from nlu.types import Entity, Example, IntentScore, Interpreter, ParseResult

__all__ = [
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
    "train_pipeline",
]
