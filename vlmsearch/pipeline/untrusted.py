"""Text we did not write (passages, OCR, captions) made safe to quote in a prompt.

Retrieved passages and text read off images are data: chat-template tokens go, lines posing as our
prompt's headings are defused, and sentences addressed to the assistant are removed, in the usual
shapes and in several languages (small models obey them despite the system prompt).
"""

from __future__ import annotations

import re

_TEMPLATE_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|\[/?INST\]", re.IGNORECASE)
# Sentences that talk to the assistant instead of about the world: the usual shapes of prompt injection,
# in English and the most common other languages of attacks (French, German, Spanish, Russian, Chinese).
_ADDRESSED = "|".join([
    # English: "ignore the previous instructions", "reply only with", "you are now", "your new task"
    r"(?:ignore|disregard|forget|override)\b[^.!?\n]{0,60}\b(?:instructions?|prompts?|rules|everything|above|previous|prior|sources?|context)",
    r"(?:reply|respond|answer|output|print)\s+only\s+(?:with|the\s+word)", r"(?:reply|respond|answer|say)\s+with\s+the\s+(?:word|code|phrase)",
    r"you\s+(?:are|must|should)\s+now", r"your\s+new\s+(?:task|job|role|instructions?)", r"system\s+prompt",
    r"new\s+instructions?", r"always\s+(?:answer|reply|respond)\b", r"(?:must|should)\s+end\s+every\s+(?:answer|reply|response)",
    # a model addressed directly: "Dear AI assistant, ...", "Assistant: reply with ..."
    r"(?:dear|hey|hello|attention)\s+(?:ai|assistant|chatbot|language\s+model|llm)\b",
    r"(?:ai|assistant|chatbot|language\s+model|llm)\s*[,:-]\s*(?:please|you\s+(?:must|should)|always|never|include|reply|say|write)\b",
    # French, German, Spanish, Russian, Chinese: "ignore the instructions", "answer only"
    r"ignor(?:ez|e|er)\b[^.!?\n]{0,40}\binstructions", r"répond(?:ez|s)?\s+(?:uniquement|seulement)",
    r"(?:ignorier(?:e|en)?|vergiss)\b[^.!?\n]{0,40}\banweisungen", r"antworte\s+nur",
    r"(?:ignora|olvida)\b[^.!?\n]{0,40}\binstrucciones", r"responde\s+(?:solamente|solo|sólo)",
    r"(?:игнорируй|забудь)[^.!?\n]{0,40}инструкци", r"ответь\s+только",
    r"忽略[^。！？\n]{0,20}(?:指令|指示|说明)", r"只(?:回复|回答|输出)",
])  # fmt: skip
_INJECTION = re.compile(rf"[^.!?。！？\n]*(?:\b|(?<=\W)|^)(?:{_ADDRESSED})[^.!?。！？\n]*[.!?。！？]?", re.IGNORECASE)
INJECTION_REMOVED = "(an instruction in this text was removed)"
_HEADINGS = re.compile(r"^\s*(question|sources|image information|image description|system|assistant)\s*:", re.I | re.M)


def as_data(text: str) -> str:
    """Text safe to quote in the prompt: no chat-template tokens, no lines posing as our headings, and
    no sentences addressed to the assistant (small models obey them despite the system prompt)."""
    text = _HEADINGS.sub(lambda m: m.group(1) + " -", _TEMPLATE_TOKENS.sub(" ", text))
    return _INJECTION.sub(" " + INJECTION_REMOVED, text)
