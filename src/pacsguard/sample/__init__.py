"""pacsguard.sample: synthetic DICOM studies full of fake identifiers, with their answer key."""

from pacsguard.sample.answer_key import AnswerKey, load_answer_key
from pacsguard.sample.corpus import generate_ct_corpus
from pacsguard.sample.generator import generate

__all__ = ["AnswerKey", "generate", "generate_ct_corpus", "load_answer_key"]
